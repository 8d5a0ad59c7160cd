//! `udpchat server` and `udpchat keygen`: settings from defaults, the
//! config file, the environment and flags; the key from the data
//! directory; then the driver until Ctrl-C or SIGTERM.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use std::time::Duration;

use udpchat_server::admin::AdminSocket;
use udpchat_server::cluster::{Cluster, ClusterConfig};
use udpchat_server::driver::{Server, bind};
use udpchat_server::settings::{Settings, default_data_dir};
use udpchat_server::store::SqliteStore;
use udpchat_server::{key_file, private_files};

use crate::args::{ConsoleMode, KeygenArgs, ServerArgs};
use crate::console::Console;

fn settings(args: &ServerArgs) -> anyhow::Result<Settings> {
    let mut s = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    if let Some(v) = args.listen {
        s.listen = v;
    }
    if let Some(v) = &args.data_dir {
        s.data_dir = v.clone();
    }
    if let Some(v) = &args.password_file {
        s.password_file = Some(v.clone());
    }
    if let Some(v) = &args.motd {
        s.motd = v.clone();
    }
    if let Some(v) = &args.server_name {
        s.server_name = v.clone();
    }
    if let Some(v) = args.lan_discovery {
        s.lan_discovery = v;
    }
    if let Some(v) = args.plain_listen {
        s.plain_listen = Some(v);
    }
    if let Some(v) = &args.cluster {
        s.cluster = Some(v.clone());
    }
    if let Some(v) = &args.key_file {
        s.key_file = Some(v.clone());
    }
    if args.quiet {
        s.console_log = false;
    }
    if let Ok(pw) = std::env::var("UDPCHAT_SERVER_PASSWORD") {
        anyhow::ensure!(!pw.is_empty(), "setting UDPCHAT_SERVER_PASSWORD: must not be empty");
        s.password = Some(pw);
    }
    s.load_password()?;
    s.validate()?;
    Ok(s)
}

/// Completes at Ctrl-C or SIGTERM. The handlers are installed when this
/// is called, not when the future is first polled: systemd may send SIGTERM
/// as soon as READY=1 is out, before the event loop polls anything, and a
/// SIGTERM without a handler kills the process with no goodbye.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok())
    };
    async move {
        #[cfg(unix)]
        match (term, int) {
            (Some(mut term), Some(mut int)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        // systemd shows the unit as deactivating while the goodbyes go out.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args)?;
    if args.check_config {
        let source = args.config.as_ref().map_or("built-in defaults".to_owned(), |p| p.display().to_string());
        println!(
            "settings are valid ({source}): listen {}, data directory {}",
            settings.listen,
            settings.data_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Warned about, not refused: the file is the administrator's (it may
    // be shared with a group on purpose), and refusing would stop a
    // working server at an upgrade. Files in the data directory are the
    // server's own and are made owner-only instead (private_files.rs).
    if let Some(path) = settings.password_file.as_deref().filter(|p| private_files::loose(p)) {
        // A log event (not eprintln!), so that --log-format json stays
        // one JSON object per line.
        tracing::warn!(
            target: "udpchat::server",
            "the password file {} is readable by others; make it owner-only: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let (key, created) = match &settings.key_file {
        Some(path) => (key_file::load(path)?, false),
        None => key_file::load_or_create(&settings.data_dir)?,
    };
    let socket = bind(settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
    let read_console = match args.console {
        ConsoleMode::On => true,
        ConsoleMode::Off => false,
        ConsoleMode::Auto => std::io::stdin().is_terminal(),
    };
    let password = if settings.password.is_some() { "required" } else { "none" };
    let store = SqliteStore::open(&settings.data_dir, settings.history_sync, settings.max_database_mb)?;
    let history = store.path().display().to_string();
    let reader = SqliteStore::open_reader(store.path())?;
    let mut server = Server::new(socket, settings.clone(), key.clone(), Box::new(store), Box::new(reader))?;
    let cluster_note = match &settings.cluster {
        Some(urls) => {
            let config = ClusterConfig {
                urls: urls.clone(),
                replicas: settings.cluster_replicas,
                max_age: settings.history_max_age_days.map(|d| Duration::from_secs(d * 86_400)),
            };
            let cluster = Cluster::connect(&config).await?;
            let node = cluster.node();
            server.join_cluster(cluster);
            tracing::info!(target: "udpchat::cluster", %urls, node = format!("{node:x}"), "joined the cluster");
            Some(format!("cluster: node {node:x} on {urls} (lines numbered and shared by NATS JetStream)"))
        }
        None => None,
    };
    // After the store: its lock says no other server uses this directory.
    // Not fatal: a server without `udpchat admin` still serves (a data
    // directory path too long for a Unix socket, say).
    let admin_path = match AdminSocket::bind(&settings.data_dir) {
        Ok(admin) => {
            let path = admin.path().display().to_string();
            server.serve_admin(admin);
            Some(path)
        }
        Err(e) => {
            tracing::warn!(
                target: "udpchat::server",
                "no admin socket in {} ({e}); udpchat admin cannot reach this server",
                settings.data_dir.display()
            );
            None
        }
    };
    server.on_reload(Box::new(move || {
        use sd_notify::NotifyState;
        let mut reloading = vec![NotifyState::Reloading];
        reloading.extend(NotifyState::monotonic_usec_now().ok());
        let _ = sd_notify::notify(&reloading);
        let reread = self::settings(&args);
        let _ = sd_notify::notify(&[NotifyState::Ready]);
        Ok(reread?)
    }));
    let addr = server.local_addr()?;
    let key_note = if created { " (new)" } else { "" };
    let mut stdout = std::io::stdout();
    // Standard output may be a pipe that closes; the server must not die
    // of it (println! would panic), so write errors are ignored here.
    let _ = writeln!(stdout, "udpchat server listening on {addr}");
    let _ = writeln!(stdout, "server key{key_note}: {}", key.public);
    let _ = writeln!(stdout, "history: {history}; password: {password}");
    let lan = match server.lan_discovery() {
        None => "off".to_owned(),
        Some(true) => "on (answering `udpchat discover`, announced over mDNS as _udpchat._udp)".to_owned(),
        Some(false) => "on (answering `udpchat discover`; mDNS could not start, see the warning)".to_owned(),
    };
    let _ = writeln!(stdout, "LAN discovery: {lan}");
    if let Some(note) = cluster_note {
        let _ = writeln!(stdout, "{note}");
    }
    if settings.plain_listen.is_some() {
        let at = server.plain_addr().map_or_else(|| format!("{addr} (the same port)"), |a| a.to_string());
        let _ = writeln!(
            stdout,
            "plain text on {at}: UNENCRYPTED and addresses unverified; anyone on the path reads and can forge it"
        );
    }
    if let Some(metrics) = server.metrics_addr() {
        let _ = writeln!(stdout, "metrics: http://{metrics}/metrics");
    }
    if let Some(path) = admin_path {
        let _ = writeln!(stdout, "admin socket: {path} (udpchat admin)");
    }
    if read_console {
        let _ = writeln!(stdout, "your chats will be recorded here; type to talk as the operator, /help for commands");
    }
    let _ = stdout.flush();
    tracing::info!(
        target: "udpchat::server",
        %addr,
        key = %key.public,
        metrics = server.metrics_addr().map(|a| a.to_string()).unwrap_or_default(),
        "listening"
    );
    // Type=notify: ready once the socket is bound and the store is open
    // (both done above). Outside systemd (no NOTIFY_SOCKET) this does nothing.
    let shutdown = shutdown_signal();
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not tell systemd the server is ready");
    }
    let Console { lines, mut output, interrupted, terminal } = Console::start(read_console);
    let interrupted = async {
        if interrupted.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let stop = async {
        tokio::select! {
            () = shutdown => {}
            () = interrupted => {}
        }
    };
    server.run(lines, &mut output, stop).await?;
    drop(terminal);
    let _ = writeln!(stdout, "server stopped");
    Ok(ExitCode::SUCCESS)
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir.unwrap_or_else(default_data_dir);
    let (key, created) = key_file::load_or_create(&dir)?;
    let state = if created { "created" } else { "existing" };
    println!("{state} server key in {}: {}", dir.join(key_file::KEY_FILE).display(), key.public);
    Ok(ExitCode::SUCCESS)
}
