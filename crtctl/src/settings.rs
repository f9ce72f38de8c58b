//! Where crtd is and who we are. Each setting comes from its flag
//! (`--server`, `--token`/`--token-file`, `--ca`), else its environment
//! variable (`CRT_SERVER`, `CRT_TOKEN`/`CRT_TOKEN_FILE`, `CRT_CA`), else
//! `~/.config/crt/crtctl.toml` (or the file `CRTCTL_CONFIG` names).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::Deserialize;

/// Options every command that talks to crtd takes.
#[derive(Args, Clone, Debug, Default)]
pub struct ServerArgs {
    /// crtd's address: http://node-1:7420 or https://crt.example.com:443
    /// (or CRT_SERVER, or server = in the config file).
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// A tenant's API token (or CRT_TOKEN, or token = in the config file).
    #[arg(
        long,
        global = true,
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// Read the token from this file, e.g. a Kubernetes service-account token,
    /// or a kubeconfig (its current user's token or tokenFile), read again at
    /// each request (or CRT_TOKEN_FILE, or token_file = in the config file).
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) that signed an https:// server's
    /// certificate, instead of the system's (or CRT_CA, or ca = in the config file).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// `crtctl.toml`. Relative paths in it are relative to the file.
#[derive(Deserialize, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub server: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

/// Where a token comes from; `origin` names it in errors.
#[derive(Debug, PartialEq)]
pub enum TokenSource {
    Value(String),
    File { path: PathBuf, origin: String },
}

/// What crtctl reaches.
#[derive(Debug, PartialEq)]
pub enum Target {
    /// crtd's API over TCP, as a tenant.
    Server {
        url: String,
        token: TokenSource,
        ca: Option<PathBuf>,
    },
    /// crtd's root socket on this node.
    RootSocket,
}

/// The address a token alone means: crtd's default listener on this machine.
pub const LOCAL_SERVER: &str = "http://127.0.0.1:7420";

/// Parses a config file's text; `path` is for errors and relative paths.
pub fn parse_config(path: &Path, text: &str) -> Result<ConfigFile> {
    let mut file: ConfigFile = toml::from_str(text).map_err(|e| config_error(path, text, &e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    file.token_file = file.token_file.map(|p| dir.join(p));
    file.ca = file.ca.map(|p| dir.join(p));
    Ok(file)
}

/// toml's message with the file, the line and the key it is about, on one line.
fn config_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let message = e.message().trim_end();
    let Some(span) = e.span() else {
        return anyhow!("{}: {message}", path.display());
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    match line.split_once('=').map(|(k, _)| k.trim()) {
        Some(key) if !key.is_empty() => {
            anyhow!("{} line {line_no}, key {key}: {message}", path.display())
        }
        _ => anyhow!("{} line {line_no}: {message}", path.display()),
    }
}

/// The config file, if there is one: `CRTCTL_CONFIG` must exist when set;
/// the default one may be absent.
fn load_config_file() -> Result<Option<ConfigFile>> {
    let (path, named) = match std::env::var_os("CRTCTL_CONFIG") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => match std::env::var_os("HOME") {
            Some(h) => (Path::new(&h).join(".config/crt/crtctl.toml"), false),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("reading crtctl's config {}", path.display()))
        }
    };
    parse_config(&path, &text).map(Some)
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// Resolves the target from flags, the environment and the config file.
pub fn target(args: &ServerArgs, root: bool) -> Result<Target> {
    choose(args, &env_var, &load_config_file()?, root)
}

/// The choice itself, with the environment and the file passed in.
pub fn choose(
    args: &ServerArgs,
    env: &dyn Fn(&str) -> Option<String>,
    file: &Option<ConfigFile>,
    root: bool,
) -> Result<Target> {
    let empty = ConfigFile::default();
    let file = file.as_ref().unwrap_or(&empty);
    if file.token.is_some() && file.token_file.is_some() {
        bail!("crtctl's config file sets both token and token_file: keep one");
    }
    let server = args
        .server
        .clone()
        .or_else(|| env("CRT_SERVER"))
        .or_else(|| file.server.clone());
    let token = if let Some(t) = &args.token {
        Some(TokenSource::Value(t.clone()))
    } else if let Some(p) = &args.token_file {
        Some(TokenSource::File {
            path: p.clone(),
            origin: "--token-file".into(),
        })
    } else if let Some(t) = env("CRT_TOKEN") {
        Some(TokenSource::Value(t))
    } else if let Some(p) = env("CRT_TOKEN_FILE") {
        Some(TokenSource::File {
            path: p.into(),
            origin: "CRT_TOKEN_FILE".into(),
        })
    } else if let Some(t) = &file.token {
        Some(TokenSource::Value(t.clone()))
    } else {
        file.token_file.as_ref().map(|p| TokenSource::File {
            path: p.clone(),
            origin: "token_file in crtctl's config file".into(),
        })
    };
    let ca = args
        .ca
        .clone()
        .or_else(|| env("CRT_CA").map(PathBuf::from))
        .or_else(|| file.ca.clone());
    match (server, token) {
        (server, Some(token)) => Ok(Target::Server {
            url: server.unwrap_or_else(|| LOCAL_SERVER.into()),
            token,
            ca,
        }),
        (Some(s), None) => bail!(
            "no token for {s}: set CRT_TOKEN or CRT_TOKEN_FILE (or --token, --token-file, or token = \"...\" in ~/.config/crt/crtctl.toml)"
        ),
        (None, None) if root => Ok(Target::RootSocket),
        (None, None) => bail!(
            "no credentials: set CRT_TOKEN or CRT_TOKEN_FILE (and CRT_SERVER when crtd is not on this machine), or run as root on the node"
        ),
    }
}

impl TokenSource {
    /// The bearer token; a file's content without surrounding whitespace.
    pub fn read(&self) -> Result<String> {
        match self {
            TokenSource::Value(t) => Ok(t.clone()),
            TokenSource::File { path, origin } => {
                let text = read_token_file(path, origin)?;
                match Kubeconfig::parse(&text) {
                    Some(kubeconfig) => kubeconfig.token(path, origin),
                    None => Ok(text),
                }
            }
        }
    }
}

/// A token file's content without surrounding whitespace; never empty.
fn read_token_file(path: &Path, origin: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {} ({origin})", path.display()))?;
    if let Some(warning) = mode_warning(path) {
        warn_once(&warning);
    }
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "the token file {} ({origin}) is empty; expected the API token (or a Kubernetes service-account token, or a kubeconfig with one)",
            path.display()
        );
    }
    Ok(token.to_string())
}

/// The parts of a kubeconfig crtctl reads: the current context's user and
/// its token, or the file that holds it (a service account's kubeconfig, as
/// CI systems are given).
#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: String,
    #[serde(default)]
    contexts: Vec<Named<KubeContext>>,
    users: Vec<Named<KubeUser>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context", alias = "user")]
    item: T,
}

#[derive(Deserialize)]
struct KubeContext {
    #[serde(default)]
    user: String,
}

#[derive(Deserialize)]
struct KubeUser {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
}

impl Kubeconfig {
    /// A kubeconfig, if the text is one (a bare token is not: it has no `users`).
    fn parse(text: &str) -> Option<Kubeconfig> {
        if !text.contains("users") {
            return None;
        }
        serde_norway::from_str(text).ok()
    }

    /// The token of the current context's user (or of the only user).
    fn token(&self, path: &Path, origin: &str) -> Result<String> {
        let at = || format!("the kubeconfig {} ({origin})", path.display());
        let user = if self.current_context.is_empty() && self.users.len() == 1 {
            &self.users[0]
        } else {
            let Some(context) = self
                .contexts
                .iter()
                .find(|c| c.name == self.current_context)
            else {
                bail!(
                    "{}: current-context {:?} names no context; expected one of {:?}",
                    at(),
                    self.current_context,
                    self.contexts.iter().map(|c| &c.name).collect::<Vec<_>>()
                );
            };
            let Some(user) = self.users.iter().find(|u| u.name == context.item.user) else {
                bail!(
                    "{}: context {:?} names user {:?}, which is not in users",
                    at(),
                    context.name,
                    context.item.user
                );
            };
            user
        };
        if let Some(token) = user.item.token.as_deref().map(str::trim) {
            if !token.is_empty() {
                return Ok(token.to_string());
            }
        }
        if let Some(file) = &user.item.token_file {
            // Relative to the kubeconfig, as kubectl reads it.
            let file = path.parent().unwrap_or(Path::new(".")).join(file);
            return read_token_file(
                &file,
                &format!("tokenFile of user {:?} in {}", user.name, at()),
            );
        }
        bail!(
            "{}: user {:?} has neither token nor tokenFile; crtctl takes a bearer token (a service account's), not client certificates or exec plugins",
            at(),
            user.name
        )
    }
}

/// What to say of a token file others may read or change: a token read is a
/// tenant's access taken, a token replaced is someone else's identity used.
/// Only a warning: a Kubernetes projected token is 0644 unless the Pod sets
/// `defaultMode`, and in a container of its own that harms nobody.
fn mode_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o027 != 0).then(|| {
        format!(
            "warning: the token file {} has mode {mode:04o}: others may read or replace it; chmod 600 it (for a projected service-account token, set the volume's defaultMode to 0400)",
            path.display()
        )
    })
}

/// Prints `warning` on stderr the first time only (a token file is read at
/// each request).
fn warn_once(warning: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| eprintln!("{warning}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_good_config_file_parses_with_paths_relative_to_it() {
        let text = "# where crtd is\nserver = \"https://crt.example.com:443\"\ntoken_file = \"token\"\nca = \"/etc/crt/ca.pem\"\n";
        let file = parse_config(Path::new("/home/u/.config/crt/crtctl.toml"), text).unwrap();
        assert_eq!(
            file,
            ConfigFile {
                server: Some("https://crt.example.com:443".into()),
                token: None,
                token_file: Some("/home/u/.config/crt/token".into()),
                ca: Some("/etc/crt/ca.pem".into()),
            }
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line_and_the_known_keys() {
        let text = "server = \"http://node-1:7420\"\nservr = \"x\"\n";
        let e = parse_config(Path::new("/c/crtctl.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/c/crtctl.toml line 2, key servr:"), "{e}");
        assert!(e.contains("unknown field `servr`"), "{e}");
        for known in ["server", "token", "token_file", "ca"] {
            assert!(e.contains(&format!("`{known}`")), "{e}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_with_its_line_and_key() {
        let text = "\n\ntoken = 42\n";
        let e = parse_config(Path::new("/c/crtctl.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/c/crtctl.toml line 3, key token:"), "{e}");
        assert!(e.contains("expected a string"), "{e}");
    }

    #[test]
    fn flags_win_over_the_environment_and_the_environment_over_the_file() {
        let file = Some(ConfigFile {
            server: Some("http://file:1".into()),
            token: Some("file-token".into()),
            token_file: None,
            ca: Some("/file/ca.pem".into()),
        });
        let env = |k: &str| match k {
            "CRT_SERVER" => Some("http://env:2".to_string()),
            "CRT_TOKEN_FILE" => Some("/env/token".to_string()),
            _ => None,
        };
        let args = ServerArgs {
            server: Some("https://flag:3".into()),
            ..Default::default()
        };
        assert_eq!(
            choose(&args, &env, &file, false).unwrap(),
            Target::Server {
                url: "https://flag:3".into(),
                token: TokenSource::File {
                    path: "/env/token".into(),
                    origin: "CRT_TOKEN_FILE".into()
                },
                ca: Some("/file/ca.pem".into()),
            }
        );
        assert_eq!(
            choose(&ServerArgs::default(), &no_env, &file, false).unwrap(),
            Target::Server {
                url: "http://file:1".into(),
                token: TokenSource::Value("file-token".into()),
                ca: Some("/file/ca.pem".into()),
            }
        );
    }

    #[test]
    fn a_token_alone_means_the_local_crtd_and_nothing_means_the_root_socket() {
        let args = ServerArgs {
            token: Some("t".into()),
            ..Default::default()
        };
        assert!(matches!(
            choose(&args, &no_env, &None, false).unwrap(),
            Target::Server { url, .. } if url == LOCAL_SERVER
        ));
        assert_eq!(
            choose(&ServerArgs::default(), &no_env, &None, true).unwrap(),
            Target::RootSocket
        );
        let e = choose(&ServerArgs::default(), &no_env, &None, false).unwrap_err();
        assert!(e.to_string().contains("no credentials"), "{e}");
    }

    #[test]
    fn a_kubeconfig_gives_its_current_users_token_or_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = |users: &str, current: &str| {
            let path = dir.path().join("kubeconfig");
            std::fs::write(
                &path,
                format!(
                    "apiVersion: v1\nkind: Config\ncurrent-context: {current}\ncontexts:\n- name: ci\n  context:\n    cluster: c\n    user: robot\n- name: other\n  context:\n    cluster: c\n    user: person\nclusters:\n- name: c\n  cluster:\n    server: https://k8s.example.com\nusers:\n{users}"
                ),
            )
            .unwrap();
            TokenSource::File {
                path,
                origin: "--token-file".into(),
            }
            .read()
        };
        let both = "- name: person\n  user:\n    token: person-token\n- name: robot\n  user:\n    token: eyJ.robot.sig\n";
        assert_eq!(kubeconfig(both, "ci").unwrap(), "eyJ.robot.sig");
        assert_eq!(kubeconfig(both, "other").unwrap(), "person-token");
        // tokenFile, relative to the kubeconfig, read as a token file (never as a kubeconfig again).
        std::fs::write(dir.path().join("sa-token"), "eyJ.projected.sig\n").unwrap();
        let file = "- name: robot\n  user:\n    tokenFile: sa-token\n";
        assert_eq!(kubeconfig(file, "ci").unwrap(), "eyJ.projected.sig");
        let err = kubeconfig(both, "gone").unwrap_err().to_string();
        assert!(
            err.contains("current-context \"gone\" names no context"),
            "{err}"
        );
        let certs = "- name: robot\n  user:\n    client-certificate-data: AAAA\n";
        let err = kubeconfig(certs, "ci").unwrap_err().to_string();
        assert!(
            err.contains("user \"robot\" has neither token nor tokenFile"),
            "{err}"
        );
    }

    #[test]
    fn a_token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc.def\n").unwrap();
        let source = TokenSource::File {
            path: path.clone(),
            origin: "--token-file".into(),
        };
        assert_eq!(source.read().unwrap(), "abc.def");
        std::fs::write(&path, "\n").unwrap();
        let e = source.read().unwrap_err().to_string();
        assert!(e.contains("is empty") && e.contains("--token-file"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = format!("{:#}", source.read().unwrap_err());
        assert!(
            e.contains("reading the token file") && e.contains("--token-file"),
            "{e}"
        );
        assert!(e.contains("No such file"), "{e}");
    }

    #[test]
    fn a_token_file_others_may_read_or_change_is_warned_of_and_still_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJh.eyJp.c2ln\n").unwrap();
        let chmod =
            |m: u32| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
        chmod(0o600);
        assert_eq!(mode_warning(&path), None);
        chmod(0o400);
        assert_eq!(mode_warning(&path), None);
        chmod(0o644);
        let w = mode_warning(&path).unwrap();
        assert!(w.contains("mode 0644") && w.contains("chmod 600"), "{w}");
        chmod(0o620);
        assert!(mode_warning(&path).unwrap().contains("mode 0620"));
        let source = TokenSource::File {
            path: path.clone(),
            origin: "CRT_TOKEN_FILE".into(),
        };
        assert_eq!(source.read().unwrap(), "eyJh.eyJp.c2ln");
    }
}
