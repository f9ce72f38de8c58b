//! The debug endpoints: clone a container, list and remove clones. A tenant
//! reaches only containers and clones it may see; anything else is "not
//! found", exactly like an absent one. Every action goes to the audit log.

use std::time::Duration;

use crt_tracer::escape;
use serde_json::{json, Value};

use super::{bad, not_found, Api, Fail, Res};
use crate::debug::{self, CloneRequest, DebugError, Service};
use crate::tenants::Scope;
use crate::web::{Request, Response};

pub(super) fn tenant_of(scope: &Scope) -> Option<&str> {
    match scope {
        Scope::Root => None,
        Scope::Tenant(t) => Some(t),
    }
}

pub(super) fn failed(e: DebugError) -> Fail {
    match e {
        DebugError::NotFound(what) => not_found(&what),
        DebugError::Conflict(msg) => Fail(409, msg),
        DebugError::BadInput(msg) => bad(msg),
        DebugError::Failed(e) => {
            tracing::warn!("debug: {e:#}");
            Fail(500, format!("{e:#}"))
        }
    }
}

pub(super) fn outcome<T>(r: &Res<T>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(Fail(status, msg)) => format!("failed ({status}): {msg}"),
    }
}

/// `ttl=` as a span (`30m`, `2h`, `1d`) within what the node allows.
fn ttl(req: &Request) -> Res<Duration> {
    let Some(v) = req.query_one("ttl").filter(|v| !v.is_empty()) else {
        return Ok(debug::DEFAULT_TTL);
    };
    match crt_config::supervisor::parse_duration(v) {
        Some(d) if d >= debug::MIN_TTL && d <= debug::MAX_TTL => Ok(d),
        _ => Err(bad(format!(
            "ttl={} is out of range; expected a span from 10s to {}h, like 30m or 2h",
            escape::quote(v.as_bytes(), false),
            debug::MAX_TTL.as_secs() / 3600
        ))),
    }
}

impl Api {
    pub(super) fn debug_service(&self) -> Res<&Service> {
        self.debug.as_deref().ok_or_else(|| {
            Fail(
                503,
                "debugging is not available on this node (crtd has no containerd address)".into(),
            )
        })
    }

    /// Runs an async debug action from the request's (blocking) thread.
    pub(super) fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Handle::current().block_on(f)
    }

    pub(super) fn visible(&self, scope: &Scope, ns: &str, id: &str) -> bool {
        !self.catalog().container(scope, Some(ns), id).is_empty()
    }

    /// `POST /v1/containers/{ns}/{id}/clones?name=&ttl=`
    pub(super) fn clone_container(
        &self,
        scope: &Scope,
        req: &Request,
        ns: &str,
        id: &str,
    ) -> Res<Response> {
        let service = self.debug_service()?;
        let r = self.clone_inner(service, scope, req, ns, id);
        let detail = r.as_ref().cloned().unwrap_or(Value::Null);
        service.audit(tenant_of(scope), "debug", ns, id, &outcome(&r), detail);
        Ok(Response::json(201, &r?))
    }

    fn clone_inner(
        &self,
        service: &Service,
        scope: &Scope,
        req: &Request,
        ns: &str,
        id: &str,
    ) -> Res<Value> {
        if !self.visible(scope, ns, id) {
            return Err(not_found(&format!(
                "container {}/{}",
                escape::escape(ns.as_bytes()),
                escape::escape(id.as_bytes())
            )));
        }
        let ttl = ttl(req)?;
        match req.query_one("live") {
            None | Some("") | Some("false") | Some("0") => {}
            Some("true") | Some("1") => return Err(Fail(409, debug::live_clone_refusal())),
            Some(other) => {
                return Err(bad(format!(
                    "live={} is not a boolean; expected true or false",
                    escape::quote(other.as_bytes(), false)
                )))
            }
        }
        let name = req
            .query_one("name")
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        if let Some(n) = &name {
            debug::check_name(n).map_err(bad)?;
        }
        let report = self.block_on(async {
            let d = service
                .debugger()
                .await
                .map_err(|e| Fail(503, format!("{e:#}")))?;
            d.clone_container(CloneRequest {
                namespace: ns.to_string(),
                source: id.to_string(),
                name,
                ttl,
            })
            .await
            .map_err(failed)
        })?;
        Ok(json!(report))
    }

    /// `GET /v1/clones`
    pub(super) fn clones(&self, scope: &Scope, req: &Request) -> Res<Response> {
        let service = self.debug_service()?;
        let only = req.query_one("namespace").filter(|n| !n.is_empty());
        let clones = self.block_on(async {
            let d = service
                .debugger()
                .await
                .map_err(|e| Fail(503, format!("{e:#}")))?;
            let mut namespaces = d
                .containerd
                .namespaces()
                .await
                .map_err(|e| failed(e.into()))?;
            namespaces.retain(|n| only.is_none_or(|o| o == n));
            d.list(&namespaces).await.map_err(failed)
        })?;
        let mine: Vec<_> = clones
            .into_iter()
            .filter(|c| self.visible(scope, &c.namespace, &c.id))
            .collect();
        Ok(Response::json(200, &json!({ "clones": mine })))
    }

    /// `DELETE /v1/clones/{ns}/{id}`
    pub(super) fn remove_clone(&self, scope: &Scope, ns: &str, id: &str) -> Res<Response> {
        let service = self.debug_service()?;
        let r = if !self.visible(scope, ns, id) {
            Err(not_found(&format!(
                "clone {}/{}",
                escape::escape(ns.as_bytes()),
                escape::escape(id.as_bytes())
            )))
        } else {
            self.block_on(async {
                let d = service
                    .debugger()
                    .await
                    .map_err(|e| Fail(503, format!("{e:#}")))?;
                d.remove(ns, id).await.map_err(failed)
            })
            .map(|()| Response::json(200, &json!({"removed": {"namespace": ns, "id": id}})))
        };
        service.audit(
            tenant_of(scope),
            "debug rm",
            ns,
            id,
            &outcome(&r),
            Value::Null,
        );
        r
    }
}
