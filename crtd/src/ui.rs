//! The browser web UI, built by `scripts/build-ui.sh` into `ui/dist` and embedded in
//! the binary when crtd is compiled. Its files are public (the sign-in page must load
//! before anyone has a token); everything they do goes through the API with a token.
//! A crtd built without `ui/dist` answers `/` with a page that says how to build it.

use std::borrow::Cow;

use crate::web::{Request, Response};

/// What the browser may do with a UI page: scripts, styles and fonts only from crtd,
/// no framing, no forms posted anywhere.
pub const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// Where index.html carries the nonce of its page (`<meta name="crt-style-nonce">`).
/// The terminal and the map make `<style>` elements as they draw; the UI's own script
/// gives each the page's nonce, so the policy allows them and no other inline style.
pub const NONCE_PLACEHOLDER: &str = "__CRT_STYLE_NONCE__";

/// [`UI_CSP`] that also lets `<style>` elements carrying `nonce` in.
pub fn page_csp(nonce: &str) -> String {
    UI_CSP.replace(
        "style-src 'self';",
        &format!("style-src 'self' 'nonce-{nonce}';"),
    )
}

/// 16 bytes from the kernel's generator, in base64: a page's style nonce.
fn new_nonce() -> String {
    use base64::Engine;
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No generator: a nonce nobody can predict cannot be made, so none is given
        // (the page then has no inline style at all, and the terminal draws plainly).
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
/// An API answer is data, never a page to render.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The UI's files as `scripts/build-ui.sh` left them when crtd was compiled; empty when
/// `ui/dist` did not exist then. `debug-embed` embeds them in debug builds too, so a
/// test binary serves what a release binary serves.
#[derive(rust_embed::RustEmbed)]
#[folder = "../ui/dist"]
#[allow_missing = true]
struct Dist;

/// Where the UI's files come from: the embedded build, or a test's own set.
pub trait Files {
    /// The file at `name`, relative to `ui/dist` (`index.html`, `assets/app-1a2b.js`).
    fn file(&self, name: &str) -> Option<Cow<'static, [u8]>>;
}

/// The files embedded in this binary.
pub struct Embedded;

impl Files for Embedded {
    fn file(&self, name: &str) -> Option<Cow<'static, [u8]>> {
        Dist::get(name).map(|f| f.data)
    }
}

#[cfg(test)]
impl Embedded {
    /// The embedded files' names.
    pub fn names() -> impl Iterator<Item = Cow<'static, str>> {
        Dist::iter()
    }
}

/// Is this request for the UI (so no token is asked)? Only GET and HEAD of `/`,
/// `/index.html` and `/assets/...`; every other path goes through the API's checks.
pub fn is_ui_request(req: &Request) -> bool {
    matches!(req.method.as_str(), "GET" | "HEAD")
        && (req.path == "/" || req.path == "/index.html" || req.path.starts_with("/assets/"))
}

/// The answer to a UI request (see [`is_ui_request`]), or `None` for any other.
pub fn answer(files: &dyn Files, req: &Request) -> Option<Response> {
    if !is_ui_request(req) {
        return None;
    }
    let resp = match req.path.strip_prefix("/assets/") {
        Some(name) => asset(files, name),
        None => match files.file("index.html") {
            Some(page) => {
                let nonce = new_nonce();
                let page = String::from_utf8_lossy(&page).replace(NONCE_PLACEHOLDER, &nonce);
                let csp = if nonce.is_empty() {
                    UI_CSP.to_string()
                } else {
                    page_csp(&nonce)
                };
                return Some(secured(
                    Response::text(200, "text/html; charset=utf-8", page)
                        .with_header("cache-control", "no-cache"),
                    csp,
                ));
            }
            None => Response::text(200, "text/html; charset=utf-8", NOT_BUILT)
                .with_header("cache-control", "no-cache"),
        },
    };
    Some(secured(resp, UI_CSP.to_string()))
}

fn asset(files: &dyn Files, name: &str) -> Response {
    // The embedded set only knows its own names, but a name that could mean
    // another directory is refused by its form too, whatever the set holds.
    let escapes = name.is_empty()
        || name.contains('\\')
        || name.contains('\0')
        || name
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    let found = if escapes {
        None
    } else {
        files.file(&format!("assets/{name}"))
    };
    match found {
        Some(data) => Response::text(200, content_type(name), data.into_owned())
            .with_header("cache-control", "public, max-age=31536000, immutable"),
        None => Response::text(404, "text/plain; charset=utf-8", "not found\n")
            .with_header("cache-control", "no-cache"),
    }
}

/// The headers every UI response carries.
fn secured(resp: Response, csp: String) -> Response {
    resp.with_header("content-security-policy", csp)
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "no-referrer")
        .with_header("cross-origin-opener-policy", "same-origin")
        .with_header("x-frame-options", "DENY")
}

/// By the name's extension; unknown ones as opaque bytes (with `nosniff`, never run).
fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "json" | "map" => "application/json",
        _ => "application/octet-stream",
    }
}

const NOT_BUILT: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>crtd</title></head>
<body>
<h1>The web UI was not built into this crtd</h1>
<p>The API answers as usual. To have the web UI, build it and then crtd:</p>
<pre>scripts/build-ui.sh
cargo build --release -p crtd</pre>
<p>(<code>scripts/build-ui.sh</code> writes <code>ui/dist</code>, which crtd embeds when it is compiled.)</p>
</body></html>
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::Peer;
    use std::collections::HashMap;

    struct Fake(HashMap<&'static str, &'static [u8]>);

    impl Files for Fake {
        fn file(&self, name: &str) -> Option<Cow<'static, [u8]>> {
            self.0.get(name).map(|b| Cow::Borrowed(*b))
        }
    }

    fn built() -> Fake {
        Fake(HashMap::from([
            (
                "index.html",
                &b"<!doctype html><meta name=\"crt-style-nonce\" content=\"__CRT_STYLE_NONCE__\"><title>CRT</title>"[..],
            ),
            ("assets/app-1a2b.js", &b"console.log(1)"[..]),
            ("assets/app-1a2b.css", &b"body{}"[..]),
            ("secret.txt", &b"outside assets"[..]),
        ]))
    }

    fn get(method: &str, target: &str) -> Request {
        Request::from_target(
            method,
            target,
            None,
            Vec::new(),
            Peer::Unix { uid: 0, pid: 1 },
        )
        .unwrap()
    }

    fn body(r: &Response) -> String {
        match &r.body {
            crate::web::Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not bytes: {other:?}"),
        }
    }

    #[test]
    fn index_and_assets_come_with_their_type_cache_and_security_headers() {
        let files = built();
        for path in ["/", "/index.html"] {
            let r = answer(&files, &get("GET", path)).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.content_type, "text/html; charset=utf-8");
            let page = body(&r);
            let nonce = page
                .strip_prefix("<!doctype html><meta name=\"crt-style-nonce\" content=\"")
                .and_then(|p| p.strip_suffix("\"><title>CRT</title>"))
                .expect("the nonce in its place");
            assert_eq!(nonce.len(), 24, "16 bytes in base64: {nonce}");
            assert_eq!(r.header("cache-control"), Some("no-cache"));
            assert_eq!(
                r.header("content-security-policy"),
                Some(page_csp(nonce).as_str())
            );
            assert!(page_csp(nonce).contains(&format!("style-src 'self' 'nonce-{nonce}';")));
            assert!(!page_csp(nonce).contains("unsafe-inline"));
            // Each page its own.
            let again = body(&answer(&files, &get("GET", path)).unwrap());
            assert_ne!(again, page);
            assert_eq!(r.header("x-frame-options"), Some("DENY"));
            assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
            assert_eq!(r.header("cross-origin-opener-policy"), Some("same-origin"));
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        }
        let js = answer(&files, &get("HEAD", "/assets/app-1a2b.js")).unwrap();
        assert_eq!(js.status, 200);
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        assert_eq!(body(&js), "console.log(1)");
        assert_eq!(
            js.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(js.header("content-security-policy"), Some(UI_CSP));
        let css = answer(&files, &get("GET", "/assets/app-1a2b.css")).unwrap();
        assert_eq!(css.content_type, "text/css; charset=utf-8");
    }

    #[test]
    fn content_types_follow_the_extension() {
        for (name, want) in [
            ("a.html", "text/html; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.svg", "image/svg+xml"),
            ("a.png", "image/png"),
            ("a.woff2", "font/woff2"),
            ("a.json", "application/json"),
            ("a.js.map", "application/json"),
            ("a", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name), want, "{name}");
        }
    }

    #[test]
    fn only_gets_of_the_ui_paths_are_ui_requests() {
        let files = built();
        for (method, path) in [
            ("GET", "/v1/topology"),
            ("GET", "/secret.txt"),
            ("GET", "/assets"),
            ("POST", "/"),
            ("DELETE", "/assets/app-1a2b.js"),
            ("GET", "/index.html/x"),
        ] {
            assert!(
                answer(&files, &get(method, path)).is_none(),
                "{method} {path} must go through the API's checks"
            );
        }
    }

    #[test]
    fn asset_names_cannot_leave_the_assets_directory() {
        let files = built();
        for target in [
            "/assets/../secret.txt",
            "/assets/%2e%2e/secret.txt",
            "/assets/..%2fsecret.txt",
            "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/assets/..\\secret.txt",
            "/assets/./app-1a2b.js",
            "/assets//app-1a2b.js",
            "/assets/",
            "/assets/missing.js",
        ] {
            let r = answer(&files, &get("GET", target)).unwrap();
            assert_eq!(r.status, 404, "{target}");
            assert!(!body(&r).contains("outside assets"), "{target}");
            assert_eq!(r.header("content-security-policy"), Some(UI_CSP));
        }
    }

    #[test]
    fn without_a_built_ui_the_index_says_how_to_build_it_and_assets_are_404() {
        let none = Fake(HashMap::new());
        let r = answer(&none, &get("GET", "/")).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "text/html; charset=utf-8");
        let page = body(&r);
        assert!(
            page.contains("web UI was not built into this crtd"),
            "{page}"
        );
        assert!(page.contains("scripts/build-ui.sh"), "{page}");
        assert_eq!(r.header("content-security-policy"), Some(UI_CSP));
        let r = answer(&none, &get("GET", "/assets/app.js")).unwrap();
        assert_eq!(r.status, 404);
    }

    #[test]
    fn the_embedded_set_matches_whether_ui_dist_existed_at_build_time() {
        // This build embeds ui/dist if it existed when crtd was compiled.
        let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist/index.html");
        assert_eq!(Embedded.file("index.html").is_some(), dist.exists());
    }
}
