//! `udpchat server` and `udpchat keygen`: settings from defaults, the
//! config file, the environment and flags; the key from the data
//! directory; then the driver until Ctrl-C or SIGTERM.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args)?;
    // Warned about, not refused: the file is the administrator's (it may
    // be shared with a group on purpose), and refusing would stop a
    // working server at an upgrade. Files in the data directory are the
    // server's own and are made owner-only instead (private_files.rs).
    if let Some(path) = settings.password_file.as_deref().filter(|p| private_files::loose(p)) {
        eprintln!(
            "warning: the password file {} is readable by others; make it owner-only: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let (key, created) = key_file::load_or_create(&settings.data_dir)?;
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
    let server = Server::new(socket, settings.clone(), key.clone(), Box::new(store), Box::new(reader))?;
    let addr = server.local_addr()?;
    let key_note = if created { " (new)" } else { "" };
    let mut stdout = std::io::stdout();
    // Standard output may be a pipe that closes; the server must not die
    // of it (println! would panic), so write errors are ignored here.
    let _ = writeln!(stdout, "udpchat server listening on {addr}");
    let _ = writeln!(stdout, "server key{key_note}: {}", key.public);
    let _ = writeln!(stdout, "history: {history}; password: {password}");
    if read_console {
        let _ = writeln!(stdout, "your chats will be recorded here; type to talk as the operator, /help for commands");
    }
    let _ = stdout.flush();
    let Console { lines, mut output, interrupted, terminal } = Console::start(read_console);
    let interrupted = async {
        if interrupted.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let stop = async {
        tokio::select! {
            () = shutdown_signal() => {}
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
