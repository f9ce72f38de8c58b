//! crtd: the CRT node supervisor. It follows the traces the shims write,
//! keeps their history, and serves each tenant its own containers, events,
//! live streams and metrics. It only reads what the shims record: a crtd
//! that is down, slow or restarting never touches a running container.

mod api;
mod catalog;
mod debug;
mod ingest;
mod limits;
mod live;
mod metrics;
mod netmap;
mod otlp;
mod server;
mod service_accounts;
mod stats;
mod store;
mod tenants;
mod tls;
mod ui;
mod usage_history;
mod web;

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use crt_config::NodeConfig;

use api::{Api, Endpoint, Listener};
use ingest::Ingest;
use server::Bound;

/// Threads that serve HTTP; work that touches the store runs on the blocking pool.
const HTTP_WORKERS: usize = 2;
/// Requests touching the store at once, over every tenant and root.
const BLOCKING_THREADS: usize = 64;

/// Logs go to stderr (journald keeps them). RUST_LOG takes tracing's target
/// syntax (`info,crtd::server=debug`); CRTD_LOG takes one level (debug, info,
/// warn). Info when neither is set.
fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;

    let from_crtd_log = || {
        let level = match std::env::var("CRTD_LOG").as_deref() {
            Ok("trace") => LevelFilter::TRACE,
            Ok("debug") => LevelFilter::DEBUG,
            Ok("warn") => LevelFilter::WARN,
            Ok("error") => LevelFilter::ERROR,
            _ => LevelFilter::INFO,
        };
        Targets::new().with_default(level)
    };
    let mut unparsed = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse::<Targets>().unwrap_or_else(|e| {
            unparsed = Some(format!("RUST_LOG={spec:?} is not a log filter ({e}); expected levels like info or info,crtd::server=debug"));
            from_crtd_log()
        }),
        _ => from_crtd_log(),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_target(false),
        )
        .with(filter)
        .init();
    if let Some(msg) = unparsed {
        tracing::warn!("{msg}");
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: crtd [--config FILE]\n\nThe node config is /etc/crt/config.toml unless CRT_CONFIG or --config names another.");
    ExitCode::from(2)
}

fn bind_tcp(addr: SocketAddr, key: &str) -> Result<tokio::net::TcpListener> {
    let l = TcpListener::bind(addr).with_context(|| format!("listening on {addr} ({key})"))?;
    l.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(l)?)
}

/// Binds the root socket, held by a lock beside it: a second crtd with the
/// same socket exits naming the first, and a socket file left by a crtd that
/// died is replaced only when nobody listens on it.
fn bind_unix(path: &Path) -> Result<(tokio::net::UnixListener, store::PidLock)> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = store::PidLock::take(
        Path::new(&lock_path),
        &format!("the socket {}", path.display()),
    )?;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "the socket {} is already served (by a crtd that holds no lock on it); stop that one first",
            path.display()
        );
    }
    let _ = fs::remove_file(path);
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    l.set_nonblocking(true)?;
    Ok((tokio::net::UnixListener::from_std(l)?, lock))
}

fn run(config: NodeConfig) -> Result<()> {
    config
        .api
        .check_listen_is_safe()
        .map_err(anyhow::Error::msg)?;
    let store =
        Arc::new(store::Store::open(&config.store.dir).with_context(|| {
            format!("opening the history store {}", config.store.dir.display())
        })?);
    let mut tenants = tenants::Tenants::new(config.tenants.clone())
        .with_cri_namespace(&config.kubernetes.cri_namespace)
        .with_operator_tokens(config.api.operator_token_sha256.clone());
    // Discovery's keys are fetched once the runtime runs (below).
    let service_accounts = config
        .kubernetes
        .service_accounts
        .clone()
        .map(service_accounts::Verifier::new);
    if let Some(v) = &service_accounts {
        tenants = tenants.with_service_accounts(Arc::clone(v));
    }
    let tenants = Arc::new(tenants);
    let ingest = Arc::new(Ingest {
        store,
        live: Arc::new(live::Live::default()),
        stats: Arc::new(stats::Stats::default()),
        tenants,
        traces_root: config.trace.state_dir.join("traces"),
        stored: AtomicU64::new(0),
        default_max_age: config.store.max_age,
        default_max_bytes: config.store.max_bytes,
        export: config
            .otlp
            .as_ref()
            .map(|_| Arc::new(otlp::ExportStats::default())),
        ended_seen: Default::default(),
        node: Default::default(),
    });
    let mut api = Api::new(Arc::clone(&ingest), config.trace.state_dir.clone());
    if config.debug.enabled {
        // Clones run the shim's binary (static, beside crtd's) as their init.
        let init = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.join("containerd-shim-crt-v2")))
            .unwrap_or_else(|| PathBuf::from("/usr/local/bin/containerd-shim-crt-v2"));
        let mut service = debug::Service::new(
            config.debug.containerd_address.clone(),
            init,
            config.store.dir.join("audit.jsonl"),
        );
        service.criu = config.debug.criu.clone();
        api.debug = Some(Arc::new(service));
    }
    let api = Arc::new(api);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_WORKERS)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("crtd-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let _entered = runtime.enter();
    if let Some(v) = service_accounts {
        runtime.spawn(v.keep_fresh());
    }
    let (stop_serving, serving) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let mut serve = |bound: Bound, listener: Listener| {
        let endpoint = Arc::new(Endpoint {
            api: Arc::clone(&api),
            listener,
        });
        servers.push(runtime.spawn(server::serve(
            bound,
            endpoint,
            server::Limits::default(),
            serving.clone(),
        )));
    };

    // Held until crtd exits: the socket is this crtd's alone.
    let (root_socket, _socket_lock) = bind_unix(&config.api.socket)?;
    serve(Bound::Unix(root_socket), Listener::Root);
    tracing::info!(
        "serving the node's root user on {}",
        config.api.socket.display()
    );
    if let Some(addr) = config.api.listen {
        let tls = config.api.tls.as_ref().map(tls::acceptor).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        serve(
            Bound::Tcp(bind_tcp(addr, "api.listen")?, tls),
            Listener::Tenants,
        );
        tracing::info!("serving tenants on {scheme}://{addr}");
    }
    if let Some(addr) = config.api.metrics_listen {
        serve(
            Bound::Tcp(bind_tcp(addr, "api.metrics_listen")?, None),
            Listener::Metrics,
        );
        tracing::info!("serving metrics on http://{addr}/metrics");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_signal = Arc::clone(&stop);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    runtime.spawn(async move {
        let sig = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        tracing::info!("{sig}: stopping");
        // Stop accepting and end live streams first, then let ingest finish its turn.
        let _ = stop_serving.send(true);
        stop_on_signal.store(true, Ordering::Relaxed);
    });
    if let Some(service) = api.debug.clone() {
        // Clones end at their TTL, also those made before a restart.
        runtime.spawn(async move {
            let mut every = tokio::time::interval(debug::REAP_EVERY);
            loop {
                every.tick().await;
                let reaped = match service.debugger().await {
                    Ok(d) => d.reap().await,
                    Err(e) => Err(e),
                };
                match reaped {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("debug: removed {n} expired clones"),
                    Err(e) => tracing::debug!("debug: looking for expired clones: {e:#}"),
                }
            }
        });
    }
    {
        // The last hour of each running container's usage, for the web UI's charts.
        let api = Arc::clone(&api);
        runtime.spawn(async move {
            let mut every = tokio::time::interval(usage_history::INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let api = Arc::clone(&api);
                let _ = tokio::task::spawn_blocking(move || api.sample_usage()).await;
            }
        });
    }
    if let (Some(cfg), Some(stats)) = (config.otlp.clone(), ingest.export.clone()) {
        let exporter = otlp::Exporter {
            cfg,
            ingest: Arc::clone(&ingest),
            state: config.store.dir.join("export-otlp.json"),
            audit: Some(config.store.dir.join("audit.jsonl")),
        };
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || exporter.run(stats, stop))?;
    }
    tracing::info!(
        "following traces under {}, history in {}, {} tenants",
        config.trace.state_dir.join("traces").display(),
        config.store.dir.display(),
        config.tenants.len()
    );
    Arc::clone(&ingest).run(stop);
    runtime.block_on(async {
        for s in servers {
            let _ = s.await;
        }
    });
    let _ = fs::remove_file(&config.api.socket);
    Ok(())
}

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().collect();
    if all.get(1).map(String::as_str) == Some("thaw-guard") {
        return debug::freeze::guard_main(&all[2..]);
    }
    init_logging();

    let mut args = std::env::args().skip(1);
    let mut config_path: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => config_path = Some(PathBuf::from(p)),
                None => return usage(),
            },
            "--help" | "-h" => {
                println!("crtd: the CRT node supervisor\n\nusage: crtd [--config FILE]\n\nThe node config is /etc/crt/config.toml unless CRT_CONFIG or --config names another\n(see /etc/crt/config.example.toml). CRTD_LOG=debug|info|warn sets the log level (RUST_LOG, if set, takes precedence).");
                return ExitCode::SUCCESS;
            }
            "--version" | "-v" => {
                println!("crtd {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    let config = match &config_path {
        Some(p) => NodeConfig::load(p),
        None => NodeConfig::load_default(),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("crtd: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crtd: {e:#}");
            ExitCode::from(1)
        }
    }
}
