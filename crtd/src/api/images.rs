//! The image endpoints (issue 7): commit a debug clone into an image, push
//! it to the tenant's registry, and redeploy a plain container on an image.
//! A tenant reaches only its own containers (others' are "not found", like
//! absent ones) and pushes only under its registry; every action is audited.

use crt_config::Registry;
use crt_tracer::escape;
use serde_json::{json, Value};

use super::clones::{audit_ended, connected, failed, flag, name_param, outcome, shown, tenant_of};
use super::{bad, Api, Fail, Res};
use crate::debug::image::{self, ImageRef};
use crate::debug::{redeploy, registry, Service};
use crate::tenants::Scope;
use crate::web::{Request, Response};

/// `image=` as an image reference.
fn image_param(req: &Request) -> Res<ImageRef> {
    match req.query_one("image").filter(|v| !v.is_empty()) {
        None => Err(bad(
            "image= is missing; expected the image reference to make, like registry.local:5000/team/app:fix",
        )),
        Some(v) => ImageRef::parse(v).map_err(bad),
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// Where `r` may be pushed by `scope`, given the tenant concerned (the
/// caller, or for root the namespace's owner) and its registry: a tenant
/// only under its own registry; root anywhere, with the tenant's settings
/// and credentials when the image is under its registry.
fn push_target(
    scope: &Scope,
    tenant: Option<&str>,
    registry: Option<&Registry>,
    r: &ImageRef,
) -> Res<registry::Target> {
    let registry = match (scope, registry) {
        (Scope::Operator, _) => {
            return Err(super::operator_read_only("pushing an image"));
        }
        (Scope::Tenant(t), None) => {
            return Err(Fail(
                409,
                format!("tenant {t:?} has no registry to push to; the node config's [[tenants]] entry for it needs registry = \"host[:port]/prefix\""),
            ))
        }
        (Scope::Tenant(_), Some(reg)) if !r.is_under(&reg.location()) => {
            return Err(bad(format!(
                "image={} is not under your registry; expected a reference that starts with {}/",
                escape::quote(r.to_string().as_bytes(), false),
                reg.location()
            )))
        }
        (_, Some(reg)) if r.is_under(&reg.location()) => Some(reg),
        _ => None,
    };
    let https = match registry {
        Some(reg) => !reg.insecure,
        // Like docker, a registry on this machine is spoken to in plain HTTP.
        None => !is_loopback(&r.domain),
    };
    let auth = match registry {
        Some(reg) => match (&reg.username, &reg.password_file) {
            (Some(user), Some(file)) => {
                let pw = std::fs::read_to_string(file).map_err(|e| {
                    Fail(
                        500,
                        format!(
                            "registry_password_file {} (tenant {}) cannot be read: {e}",
                            file.display(),
                            tenant.unwrap_or("?")
                        ),
                    )
                })?;
                Some((user.clone(), pw.trim_end_matches(['\r', '\n']).to_string()))
            }
            _ => None,
        },
        None => None,
    };
    Ok(registry::Target {
        base: format!("{}://{}", if https { "https" } else { "http" }, r.domain),
        host: r.domain.clone(),
        repository: r.path.clone(),
        reference: r.reference().to_string(),
        auth,
    })
}

impl Api {
    fn push_target(&self, scope: &Scope, ns: &str, r: &ImageRef) -> Res<registry::Target> {
        let tenant = match scope {
            Scope::Tenant(t) => Some(t.as_str()),
            Scope::Root | Scope::Operator => self.ingest.tenants.owner(ns, None),
        };
        let registry = tenant
            .and_then(|t| self.ingest.tenants.get(t))
            .and_then(|t| t.registry.as_ref());
        push_target(scope, tenant, registry, r)
    }

    /// `POST /v1/clones/{ns}/{id}/commit?image=REF[&push=true]`
    pub(super) fn commit_clone(
        &self,
        scope: &Scope,
        req: &Request,
        ns: &str,
        id: &str,
    ) -> Res<Response> {
        let service = self.debug_service()?;
        let asked = req.query_one("image").unwrap_or("").to_string();
        let checked = self.commit_check(scope, req, ns, id);
        let committed = checked.and_then(|(r, target)| {
            let d = self.block_on(connected(service))?;
            let (report, made) = self
                .block_on(image::commit(&d.containerd, ns, id, &r))
                .map_err(failed)?;
            Ok((d, report, made, r, target))
        });
        let (d, mut report, made, r, target) = audit_ended(
            service,
            scope,
            "commit",
            (ns, id),
            committed,
            |(_, report, ..)| json!(report),
            json!({ "image": asked }),
        )?;
        if let Some(target) = target {
            let pushed = self.push(&d, ns, &made, &target);
            service.audit(
                tenant_of(scope),
                "push",
                ns,
                id,
                &outcome(&pushed),
                json!({ "image": r.to_string(), "digest": report.digest }),
            );
            match pushed {
                Ok(p) => report.pushed = Some(p),
                Err(Fail(_, msg)) => {
                    return Err(Fail(
                        502,
                        format!(
                            "committed {} as {} ({}), but the push failed: {msg}",
                            shown(ns, id),
                            report.image,
                            report.digest
                        ),
                    ))
                }
            }
        }
        Ok(Response::json(201, &json!(report)))
    }

    /// What a commit needs, checked before anything is made: a visible
    /// container, a valid reference, a push target the caller may use.
    fn commit_check(
        &self,
        scope: &Scope,
        req: &Request,
        ns: &str,
        id: &str,
    ) -> Res<(ImageRef, Option<registry::Target>)> {
        self.seen(scope, "clone", ns, id)?;
        let r = image_param(req)?;
        if let Some(d) = &r.digest {
            return Err(bad(format!(
                "image={} names a digest ({d}), but a commit makes new content whose digest is not known before; expected a reference with a tag and no @digest",
                escape::quote(r.to_string().as_bytes(), false)
            )));
        }
        let target = if flag(req, "push")? {
            Some(self.push_target(scope, ns, &r)?)
        } else {
            None
        };
        Ok((r, target))
    }

    fn push(
        &self,
        d: &crate::debug::Debugger,
        ns: &str,
        made: &image::Resolved,
        target: &registry::Target,
    ) -> Res<Value> {
        let fail = |e: anyhow::Error| Fail(500, format!("{e:#}"));
        let mut blobs: Vec<(String, u64)> = made
            .layers()
            .map_err(fail)?
            .into_iter()
            .map(|l| (l.digest, l.size.max(0) as u64))
            .collect();
        blobs.push((
            made.config_desc.digest.clone(),
            made.config_desc.size.max(0) as u64,
        ));
        let manifest = self
            .block_on(d.containerd.read_blob(ns, &made.manifest_desc.digest))
            .map_err(fail)?;
        let pushed = registry::push(
            target,
            &blobs,
            &made.manifest_desc.media_type,
            &manifest,
            &mut |digest| {
                self.block_on(d.containerd.blob_reader(ns, digest))
                    .map(|r| Box::new(r) as Box<dyn std::io::Read + Send>)
                    .map_err(|e| format!("{e:#}"))
            },
        )
        .map_err(|e| Fail(502, e))?;
        Ok(json!({
            "to": format!("{}/{}:{}", target.host, target.repository, target.reference),
            "uploaded": pushed.uploaded.len(),
            "present": pushed.present.len(),
        }))
    }

    /// `POST /v1/containers/{ns}/{id}/redeploy?image=REF[&name=NEW]`
    pub(super) fn redeploy(
        &self,
        scope: &Scope,
        req: &Request,
        ns: &str,
        id: &str,
    ) -> Res<Response> {
        let service = self.debug_service()?;
        let asked = req.query_one("image").unwrap_or("").to_string();
        let r = self.redeploy_inner(service, scope, req, ns, id);
        let asked = json!({ "image": asked });
        let r = audit_ended(service, scope, "redeploy", (ns, id), r, Value::clone, asked);
        Ok(Response::json(201, &r?))
    }

    fn redeploy_inner(
        &self,
        service: &Service,
        scope: &Scope,
        req: &Request,
        ns: &str,
        id: &str,
    ) -> Res<Value> {
        self.seen(scope, "container", ns, id)?;
        let r = image_param(req)?;
        let name = name_param(req)?;
        let report = self.block_on(async {
            let d = connected(service).await?;
            redeploy::redeploy(&d.containerd, ns, id, &r, name)
                .await
                .map_err(failed)
        })?;
        Ok(json!(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(dir: &std::path::Path, password: Option<&str>) -> Registry {
        let password_file = password.map(|p| {
            let f = dir.join("pw");
            std::fs::write(&f, format!("{p}\n")).unwrap();
            f
        });
        Registry {
            host: "reg.example.com:5000".into(),
            prefix: "acme".into(),
            insecure: false,
            username: password.map(|_| "bot".to_string()),
            password_file,
        }
    }

    trait Outcome {
        fn target(self) -> registry::Target;
        fn fail(self) -> Fail;
    }

    impl Outcome for Res<registry::Target> {
        fn target(self) -> registry::Target {
            match self {
                Ok(t) => t,
                Err(Fail(status, msg)) => panic!("{status}: {msg}"),
            }
        }
        fn fail(self) -> Fail {
            match self {
                Ok(t) => panic!("{t:?}"),
                Err(f) => f,
            }
        }
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn a_tenant_pushes_only_under_its_registry_with_its_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let acme = Scope::Tenant("acme".into());
        let r = reg(dir.path(), Some("s3cret"));
        let t = push_target(
            &acme,
            Some("acme"),
            Some(&r),
            &image("reg.example.com:5000/acme/web:fix"),
        )
        .target();
        assert_eq!(t.base, "https://reg.example.com:5000");
        assert_eq!(
            (t.repository.as_str(), t.reference.as_str()),
            ("acme/web", "fix")
        );
        assert_eq!(t.auth, Some(("bot".to_string(), "s3cret".to_string())));
        let Fail(status, msg) = push_target(
            &acme,
            Some("acme"),
            Some(&r),
            &image("reg.example.com:5000/globex/web:1"),
        )
        .fail();
        assert_eq!(status, 400);
        assert!(
            msg.contains("starts with reg.example.com:5000/acme/"),
            "{msg}"
        );
        let Fail(status, msg) =
            push_target(&acme, Some("acme"), None, &image("localhost/x:1")).fail();
        assert_eq!(status, 409);
        assert!(msg.contains("registry = "), "{msg}");
        let insecure = Registry {
            insecure: true,
            ..reg(dir.path(), None)
        };
        let t = push_target(
            &acme,
            Some("acme"),
            Some(&insecure),
            &image("reg.example.com:5000/acme/web:fix"),
        )
        .target();
        assert_eq!(
            (t.base.as_str(), t.auth),
            ("http://reg.example.com:5000", None)
        );
    }

    #[test]
    fn root_pushes_anywhere_with_the_tenants_settings_under_its_registry() {
        let dir = tempfile::tempdir().unwrap();
        let r = reg(dir.path(), Some("s3cret"));
        let t = push_target(
            &Scope::Root,
            Some("acme"),
            Some(&r),
            &image("other.example.com/team/app:1"),
        )
        .target();
        assert_eq!(
            (t.base.as_str(), t.auth),
            ("https://other.example.com", None)
        );
        let t = push_target(
            &Scope::Root,
            None,
            None,
            &image("127.0.0.1:5000/team/app:1"),
        )
        .target();
        assert_eq!(
            t.base, "http://127.0.0.1:5000",
            "a registry on this machine: plain HTTP"
        );
        let t = push_target(
            &Scope::Root,
            Some("acme"),
            Some(&r),
            &image("reg.example.com:5000/acme/app:1"),
        )
        .target();
        assert_eq!(t.auth.map(|a| a.0).as_deref(), Some("bot"));
    }

    #[test]
    fn an_unreadable_password_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry {
            password_file: Some(dir.path().join("missing")),
            username: Some("bot".into()),
            ..reg(dir.path(), None)
        };
        let Fail(status, msg) = push_target(
            &Scope::Tenant("acme".into()),
            Some("acme"),
            Some(&r),
            &image("reg.example.com:5000/acme/web:fix"),
        )
        .fail();
        assert_eq!(status, 500);
        assert!(
            msg.contains("registry_password_file")
                && msg.contains("missing")
                && msg.contains("tenant acme"),
            "{msg}"
        );
    }
}
