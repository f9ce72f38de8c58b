//! crt-config: the node configuration (`/etc/crt/config.toml`) and the
//! `crt.dev/trace` annotation, each refusing bad input with an error that
//! names the key, the value and what is expected.

pub mod annotation;
pub mod node;
pub mod supervisor;

pub use annotation::{parse_trace, AnnotationError, TraceSpec, TRACE_ANNOTATION};
pub use node::{
    ConfigError, DebugConfig, IssuerKeys, KubernetesConfig, NodeConfig, ServiceAccountsConfig,
};
pub use supervisor::{ApiConfig, OtlpConfig, Registry, StoreConfig, Tenant};
