//! The debug endpoints: clone a container, list and remove clones. A tenant
//! reaches only containers and clones it may see; anything else is "not
//! found", exactly like an absent one. Every action goes to the audit log.

use std::time::Duration;

use crt_tracer::escape;
use serde_json::{json, Value};

use super::{bad, not_found, Api, Fail, Res};
use crate::debug::exec::ExecSpec;
use crate::debug::{self, CloneRequest, DebugError, Service};
use crate::tenants::Scope;
use crate::web::{Request, Response};

/// `ns/id` as shown in a message: escaped.
pub(super) fn shown(ns: &str, id: &str) -> String {
    format!(
        "{}/{}",
        escape::escape(ns.as_bytes()),
        escape::escape(id.as_bytes())
    )
}

/// The debugger, or 503 when containerd cannot be reached.
pub(super) async fn connected(service: &Service) -> Res<std::sync::Arc<debug::Debugger>> {
    service
        .debugger()
        .await
        .map_err(|e| Fail(503, format!("{e:#}")))
}

pub(super) fn tenant_of(scope: &Scope) -> Option<&str> {
    match scope {
        Scope::Root | Scope::Operator => None,
        Scope::Tenant(t) => Some(t),
    }
}

pub(super) fn failed(e: DebugError) -> Fail {
    match e {
        DebugError::NotFound(what) => not_found(&what),
        DebugError::Conflict(msg) => Fail(409, msg),
        DebugError::BadInput(msg) => bad(msg),
        DebugError::Failed(e) if disk_full(&e) => {
            tracing::warn!("debug: {e:#}");
            Fail(
                507,
                format!("the node's disk is full, so nothing was made (what was begun is removed, and a source keeps running): {e:#}"),
            )
        }
        DebugError::Failed(e) => {
            tracing::warn!("debug: {e:#}");
            Fail(500, format!("{e:#}"))
        }
    }
}

/// Writes how a debug action of `scope` ended to the audit log, and
/// passes the result on: the outcome, and what it made (`made`) or, when
/// it failed, what was asked.
pub(super) fn audit_ended<T>(
    service: &Service,
    scope: &Scope,
    action: &str,
    (ns, id): (&str, &str),
    r: Res<T>,
    made: impl FnOnce(&T) -> Value,
    asked: Value,
) -> Res<T> {
    let detail = r.as_ref().map_or(asked, made);
    service.audit(tenant_of(scope), action, ns, id, &outcome(&r), detail);
    r
}

/// Whether `e` comes of a full disk: ours (ENOSPC), or containerd's (its
/// gRPC errors carry the message only).
fn disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
            || c.to_string()
                .to_ascii_lowercase()
                .contains("no space left on device")
    })
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

/// A boolean query parameter.
pub(super) fn flag(req: &Request, key: &str) -> Res<bool> {
    match req.query_one(key) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(bad(format!(
            "{key}={} is not a boolean; expected true or false",
            escape::quote(other.as_bytes(), false)
        ))),
    }
}

/// `name=`: a container name, if given.
pub(super) fn name_param(req: &Request) -> Res<Option<String>> {
    match req.query_one("name").filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(n) => debug::check_name(n)
            .map(|()| Some(n.to_string()))
            .map_err(bad),
    }
}

/// A terminal dimension: 1 to 10000, `default` when absent.
fn dimension(req: &Request, key: &str, default: u16) -> Res<u16> {
    match req.query_one(key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "{key}={} is not a terminal size; expected a number from 1 to 10000",
                    escape::quote(v.as_bytes(), false)
                ))
            }),
    }
}

/// What to run, from `cmd=` (repeated, in order; none: the clone's shell),
/// `tty=`, `cols=`, `rows=` and `env=KEY=VALUE` (repeated).
fn exec_spec(req: &Request) -> Res<ExecSpec> {
    let args: Vec<String> = req.query_all("cmd").iter().map(|s| s.to_string()).collect();
    if args.len() > 1024 || args.iter().any(|a| a.contains('\0')) {
        return Err(bad(
            "cmd= is not a command; expected at most 1024 arguments, none holding a NUL byte",
        ));
    }
    if args.first().is_some_and(|a| a.is_empty()) {
        return Err(bad(
            "cmd= starts with an empty program name; expected the program to run",
        ));
    }
    let mut env = Vec::new();
    for kv in req.query_all("env") {
        match kv.split_once('=') {
            Some((k, _)) if !k.is_empty() && !kv.contains('\0') => env.push(kv.to_string()),
            _ => {
                return Err(bad(format!(
                    "env={} is not an environment variable; expected KEY=VALUE",
                    escape::quote(kv.as_bytes(), false)
                )))
            }
        }
    }
    Ok(ExecSpec {
        args: if args.is_empty() {
            ExecSpec::shell()
        } else {
            args
        },
        tty: flag(req, "tty")?,
        cols: dimension(req, "cols", 80)?,
        rows: dimension(req, "rows", 24)?,
        env,
        as_root: false,
    })
}

/// `path=`: an absolute path in the clone.
fn clone_path(req: &Request) -> Res<String> {
    match req.query_one("path") {
        Some(p) if p.starts_with('/') && p.len() <= 4096 && !p.contains('\0') => Ok(p.to_string()),
        other => Err(bad(format!(
            "path={} is not a path in the clone; expected an absolute path such as /etc/hosts",
            escape::quote(other.unwrap_or("").as_bytes(), false)
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
        let made = audit_ended(
            service,
            scope,
            "debug",
            (ns, id),
            r,
            Value::clone,
            Value::Null,
        )?;
        Ok(Response::json(201, &made))
    }

    fn clone_inner(
        &self,
        service: &Service,
        scope: &Scope,
        req: &Request,
        ns: &str,
        id: &str,
    ) -> Res<Value> {
        self.seen(scope, "container", ns, id)?;
        let ttl = ttl(req)?;
        let live = flag(req, "live")?;
        let name = name_param(req)?;
        let trace = match req.query_one("trace").filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                crt_config::annotation::parse_trace(t).map_err(|e| bad(format!("trace: {e}")))?;
                Some(t.to_string())
            }
        };
        let network = match req.query_one("network").filter(|n| !n.is_empty()) {
            None => debug::CloneNetwork::Loopback,
            Some(n) => debug::CloneNetwork::parse(n).ok_or_else(|| {
                bad(format!(
                    "network={} is not a clone network; expected loopback (a network of its own with lo up) or none (no interface up)",
                    escape::quote(n.as_bytes(), false)
                ))
            })?,
        };
        let copy_volumes: Vec<String> = req
            .query_all("copy_volume")
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        if live {
            debug::live_input(trace.as_deref(), network, &copy_volumes).map_err(bad)?;
            // Said before containerd is asked anything: a node without a
            // working CRIU cannot make one at all.
            debug::criu_ready(service.criu.as_deref()).map_err(|m| Fail(409, m))?;
        }
        let report = self.block_on(async {
            let d = connected(service).await?;
            d.clone_container(CloneRequest {
                namespace: ns.to_string(),
                source: id.to_string(),
                name,
                ttl,
                trace,
                network,
                copy_volumes,
                live,
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
            let d = connected(service).await?;
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
        let r = self
            .seen(scope, "clone", ns, id)
            .and_then(|()| {
                self.block_on(async {
                    let d = connected(service).await?;
                    d.remove(ns, id).await.map_err(failed)
                })
            })
            .map(|()| Response::json(200, &json!({"removed": {"namespace": ns, "id": id}})));
        audit_ended(
            service,
            scope,
            "debug rm",
            (ns, id),
            r,
            |_| Value::Null,
            Value::Null,
        )
    }
}

impl Api {
    /// Another tenant's container is not found, before anything of the
    /// request is looked at, exactly as an absent one (`what`: the word for it).
    pub(super) fn seen(&self, scope: &Scope, what: &str, ns: &str, id: &str) -> Res<()> {
        if self.visible(scope, ns, id) {
            Ok(())
        } else {
            Err(not_found(&format!("{what} {}", shown(ns, id))))
        }
    }

    /// A clone of the caller's that runs: the clone's debugger, or why not.
    fn running_clone(
        &self,
        service: &Service,
        scope: &Scope,
        ns: &str,
        id: &str,
    ) -> Res<(std::sync::Arc<debug::Debugger>, bool)> {
        self.seen(scope, "clone", ns, id)?;
        let absent = || not_found(&format!("clone {}", shown(ns, id)));
        self.block_on(async {
            let d = connected(service).await?;
            let c = d
                .containerd
                .container(ns, id)
                .await
                .map_err(|e| failed(e.into()))?
                .ok_or_else(absent)?;
            if !c.labels.contains_key(debug::LABEL_CLONE_OF) {
                return Err(Fail(
                    409,
                    format!(
                        "{} is not a debug clone: commands and copies go into clones only, so the original keeps serving untouched; make one with `crtctl debug -n {} {}`",
                        shown(ns, id),
                        escape::escape(ns.as_bytes()),
                        escape::escape(id.as_bytes())
                    ),
                ));
            }
            match d.containerd.task(ns, id).await.map_err(|e| failed(e.into()))? {
                Some((_, debug::containerd::TASK_RUNNING)) => {
                    Ok((d, c.labels.contains_key(debug::LABEL_LIVE)))
                }
                _ => Err(Fail(
                    409,
                    format!(
                        "the clone {} is not running; remove it with `crtctl debug rm` and make another",
                        shown(ns, id)
                    ),
                )),
            }
        })
    }

    /// A session running `spec` in the clone, audited when it ends.
    fn exec_session(
        &self,
        scope: &Scope,
        action: &'static str,
        ns: &str,
        id: &str,
        mut spec: ExecSpec,
        mut detail: Value,
    ) -> Res<Response> {
        let service = std::sync::Arc::clone(
            self.debug
                .as_ref()
                .ok_or_else(|| Fail(503, "debugging is not available on this node".into()))?,
        );
        // A live clone is its source's processes restored by CRIU: the
        // helper mounted into filesystem clones is not in it.
        let checked = self
            .running_clone(&service, scope, ns, id)
            .and_then(|(d, live)| {
                if live && spec.args.first().map(String::as_str) == Some(debug::INIT_PATH) {
                    if spec.args == ExecSpec::shell() {
                        spec.args = vec!["/bin/sh".into()];
                        detail["cmd"] = json!(spec.args);
                    } else {
                        return Err(Fail(
                            409,
                            format!(
                                "the clone {} is a live one (its processes restored by CRIU): copies need crtd's helper, which only filesystem clones have; use crtctl exec with the clone's own tar or cat",
                                shown(ns, id)
                            ),
                        ));
                    }
                }
                Ok(d)
            });
        // A session that ends is audited when it ends; one refused, now.
        let d = match checked {
            Ok(d) => d,
            Err(f) => {
                let r = Err(f);
                return audit_ended(
                    &service,
                    scope,
                    action,
                    (ns, id),
                    r,
                    |_| Value::Null,
                    detail,
                );
            }
        };
        let (ns, id) = (ns.to_string(), id.to_string());
        let tenant = tenant_of(scope).map(str::to_string);
        Ok(Response::session(Box::new(move |socket, stop| {
            Box::pin(async move {
                let ended =
                    debug::exec::session(d, ns.clone(), id.clone(), spec, socket, stop).await;
                let outcome = match (&ended.exit_code, &ended.error) {
                    (_, Some(e)) => format!("failed: {e}"),
                    (Some(c), None) => format!("exited {c}"),
                    (None, None) => "ended".to_string(),
                };
                let mut detail = detail;
                detail["ended"] = json!(ended);
                service.audit(tenant.as_deref(), action, &ns, &id, &outcome, detail);
            })
        })))
    }

    /// `GET /v1/clones/{ns}/{id}/exec?cmd=&tty=&cols=&rows=&env=` (WebSocket)
    pub(super) fn exec(&self, scope: &Scope, req: &Request, ns: &str, id: &str) -> Res<Response> {
        self.debug_service()?;
        self.seen(scope, "clone", ns, id)?;
        let spec = exec_spec(req)?;
        let detail = json!({"cmd": spec.args, "tty": spec.tty});
        self.exec_session(scope, "exec", ns, id, spec, detail)
    }

    /// `GET /v1/clones/{ns}/{id}/archive?path=[&extract=true]` (WebSocket):
    /// a tar stream of `path` out of the clone, or one unpacked into it.
    pub(super) fn archive(
        &self,
        scope: &Scope,
        req: &Request,
        ns: &str,
        id: &str,
    ) -> Res<Response> {
        self.debug_service()?;
        self.seen(scope, "clone", ns, id)?;
        let path = clone_path(req)?;
        let extract = flag(req, "extract")?;
        let spec = ExecSpec {
            args: if extract {
                ExecSpec::tar_in(&path)
            } else {
                ExecSpec::tar_out(&path)
            },
            tty: false,
            cols: 80,
            rows: 24,
            env: Vec::new(),
            as_root: true,
        };
        let action = if extract { "cp in" } else { "cp out" };
        self.exec_session(scope, action, ns, id, spec, json!({"path": path}))
    }
}
