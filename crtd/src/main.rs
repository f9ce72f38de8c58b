//! crtd: the CRT node supervisor. It follows the traces the shims write,
//! keeps their history, and serves each tenant its own containers, events,
//! live streams and metrics. It only reads what the shims record: a crtd
//! that is down, slow or restarting never touches a running container.

mod api;
mod catalog;
mod http;
mod ingest;
mod limits;
mod live;
mod metrics;
mod otlp;
mod stats;
mod store;
mod tenants;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use anyhow::{Context, Result};
use crt_config::NodeConfig;

use api::{Api, Endpoint, Listener};
use ingest::Ingest;

struct StderrLog(log::LevelFilter);

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.0
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let ts = crt_tracer::render::rfc3339_utc(crt_tracer::render::now_ns());
            let _ = writeln!(std::io::stderr(), "{ts} {} {}", r.level(), r.args());
        }
    }

    fn flush(&self) {}
}

fn usage() -> ExitCode {
    eprintln!("usage: crtd [--config FILE]\n\nThe node config is /etc/crt/config.toml unless CRT_CONFIG or --config names another.");
    ExitCode::from(2)
}

fn bind_unix(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = fs::remove_file(path);
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    Ok(l)
}

fn run(config: NodeConfig) -> Result<()> {
    let store =
        Arc::new(store::Store::open(&config.store.dir).with_context(|| {
            format!("opening the history store {}", config.store.dir.display())
        })?);
    let tenants = Arc::new(
        tenants::Tenants::new(config.tenants.clone())
            .with_cri_namespace(&config.kubernetes.cri_namespace),
    );
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
    });
    let api = Arc::new(Api::new(
        Arc::clone(&ingest),
        config.trace.state_dir.clone(),
    ));
    let limits = http::Limits::default();

    let root = bind_unix(&config.api.socket)?;
    http::serve_unix(
        root,
        Arc::new(Endpoint {
            api: Arc::clone(&api),
            listener: Listener::Root,
        }),
        limits.clone(),
    )?;
    log::info!(
        "serving the node's root user on {}",
        config.api.socket.display()
    );
    if let Some(addr) = config.api.listen {
        let l =
            TcpListener::bind(addr).with_context(|| format!("listening on {addr} (api.listen)"))?;
        http::serve_tcp(
            l,
            Arc::new(Endpoint {
                api: Arc::clone(&api),
                listener: Listener::Tenants,
            }),
            limits.clone(),
        )?;
        log::info!("serving tenants on http://{addr}");
    }
    if let Some(addr) = config.api.metrics_listen {
        let l = TcpListener::bind(addr)
            .with_context(|| format!("listening on {addr} (api.metrics_listen)"))?;
        http::serve_tcp(
            l,
            Arc::new(Endpoint {
                api: Arc::clone(&api),
                listener: Listener::Metrics,
            }),
            limits,
        )?;
        log::info!("serving metrics on http://{addr}/metrics");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
        .context("installing signal handlers")?;
    let stop_on_signal = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: stopping");
                stop_on_signal.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })?;
    if let (Some(cfg), Some(stats)) = (config.otlp.clone(), ingest.export.clone()) {
        let exporter = otlp::Exporter {
            cfg,
            ingest: Arc::clone(&ingest),
            state: config.store.dir.join("export-otlp.json"),
        };
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || exporter.run(stats, stop))?;
    }
    log::info!(
        "following traces under {}, history in {}, {} tenants",
        config.trace.state_dir.join("traces").display(),
        config.store.dir.display(),
        config.tenants.len()
    );
    Arc::clone(&ingest).run(stop);
    let _ = fs::remove_file(&config.api.socket);
    Ok(())
}

fn main() -> ExitCode {
    let level = match std::env::var("CRTD_LOG").as_deref() {
        Ok("debug") => log::LevelFilter::Debug,
        Ok("warn") => log::LevelFilter::Warn,
        _ => log::LevelFilter::Info,
    };
    let _ = log::set_boxed_logger(Box::new(StderrLog(level))).map(|()| log::set_max_level(level));

    let mut args = std::env::args().skip(1);
    let mut config_path: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => config_path = Some(PathBuf::from(p)),
                None => return usage(),
            },
            "--help" | "-h" => {
                println!("crtd: the CRT node supervisor\n\nusage: crtd [--config FILE]\n\nThe node config is /etc/crt/config.toml unless CRT_CONFIG or --config names another\n(see /etc/crt/config.example.toml). CRTD_LOG=debug|info|warn sets the log level.");
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
