//! End-to-end: the server console at a terminal, as an operator uses it.
//! `udpchat server` runs inside a private tmux server (common/tmux.rs) and
//! members talk while the operator is half-way through a line: their lines
//! appear above it and the half-typed line stays as it was.

mod common;

use common::BIN;
use common::tmux::{Cleanup, Plain, quote, screen, tmux, tmux_available_or_skip, wait_screen};

/// The last line on the screen that is not blank: the editor's line.
fn prompt_line(shown: &str) -> &str {
    shown.lines().rev().map(str::trim_end).find(|l| !l.is_empty()).unwrap_or_default()
}

#[test]
fn a_half_typed_console_line_survives_chat_arriving() {
    if !tmux_available_or_skip() {
        return;
    }
    let home = tempfile::tempdir().expect("temp dir");
    let home = home.path();
    let tmux_dir = home.join("tmux");
    std::fs::create_dir_all(&tmux_dir).expect("tmux dir");
    let mut cleanup =
        Cleanup { socket: format!("udpchat-console-{}", std::process::id()), tmux_dir, children: Vec::new() };

    // The terminal's settings are printed after the server stops, to show
    // the editor gave the terminal back as it found it.
    let data = home.join("data");
    let command = format!(
        "{bin} server --listen 127.0.0.1:0 --data-dir {data}; echo stopped; stty -a; sleep 30",
        bin = quote(BIN),
        data = quote(data.to_str().expect("UTF-8 temp path")),
    );
    tmux(&cleanup, &["new-session", "-d", "-s", "console", "-x", "150", "-y", "40", &command]);
    let shown = wait_screen(&cleanup, "console", "the server's start", |s| s.contains("/help for commands"));
    let addr = shown
        .lines()
        .find_map(|l| l.strip_prefix("udpchat server listening on "))
        .expect("the listening address")
        .trim()
        .to_owned();

    tmux(&cleanup, &["send-keys", "-t", "console", "-l", "half typed"]);
    wait_screen(&cleanup, "console", "the typed text", |s| prompt_line(s) == "> half typed");

    let mut bob = Plain::start(&mut cleanup, &addr, "bob", home);
    bob.wait_line("its login", |l| l.contains("you joined #lobby"));
    bob.say("hello from bob");
    let shown = wait_screen(&cleanup, "console", "bob's line", |s| s.contains("#lobby <bob> hello from bob"));
    assert_eq!(prompt_line(&shown), "> half typed", "the operator's line was broken up:\n{shown}");
    let bob_at = shown.find("<bob> hello from bob").expect("bob's line");
    let prompt_at = shown.rfind("> half typed").expect("the prompt");
    assert!(bob_at < prompt_at, "the chat record goes above the line being typed:\n{shown}");

    // The rest of the line, then Enter: it goes out whole, as one line.
    tmux(&cleanup, &["send-keys", "-t", "console", "-l", ", now finished"]);
    tmux(&cleanup, &["send-keys", "-t", "console", "Enter"]);
    bob.wait_line("the operator's line", |l| l.contains("<operator!> half typed, now finished"));
    wait_screen(&cleanup, "console", "an empty prompt", |s| prompt_line(s) == ">");

    // Up recalls it.
    tmux(&cleanup, &["send-keys", "-t", "console", "Up"]);
    wait_screen(&cleanup, "console", "the recalled line", |s| prompt_line(s) == "> half typed, now finished");

    // Ctrl-C stops the server (the editor owns the terminal, so this is
    // not a signal), members hear it, and the terminal is back in its
    // usual mode: echo and line editing on.
    tmux(&cleanup, &["send-keys", "-t", "console", "C-c"]);
    bob.wait_line("the server going away", |l| l.contains("closed"));
    let shown =
        wait_screen(&cleanup, "console", "the terminal settings", |s| s.contains("stopped") && s.contains("icanon"));
    let settings = &shown[shown.find("stopped").expect("stopped")..];
    let flags: Vec<&str> = settings.split_whitespace().collect();
    assert!(flags.contains(&"echo") && flags.contains(&"icanon"), "the terminal was left in raw mode:\n{shown}");
    assert!(screen(&cleanup, "console").contains("server stopped"), "no goodbye");
}
