//! End-to-end: the full-screen client as a person uses it. The real
//! `udpchat server` runs on a loopback port, `udpchat chat` runs inside a
//! private tmux server (common/tmux.rs), and a `udpchat chat --plain` child
//! talks to it.

mod common;

use std::process::Stdio;
use std::time::Instant;

use common::tmux::{Cleanup, POLL, Plain, input_line, quote, tmux, tmux_available_or_skip, tmux_command, wait_screen};
use common::{BIN, ServerProc, WAIT};

#[test]
fn typed_lines_go_out_and_replies_show_on_screen() {
    if !tmux_available_or_skip() {
        return;
    }
    let started = Instant::now();
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let addr = server.addr();
    let home = tempfile::tempdir().expect("temp dir");
    let home = home.path();
    let tmux_dir = home.join("tmux");
    std::fs::create_dir_all(&tmux_dir).expect("tmux dir");
    let mut cleanup = Cleanup { socket: format!("udpchat-tui-{}", std::process::id()), tmux_dir, children: Vec::new() };

    // The interface in a 120x30 terminal, with a home of its own.
    let known = home.join("known_servers");
    let home_s = home.to_str().expect("UTF-8 temp path");
    let command = format!(
        "env HOME={h} XDG_CONFIG_HOME={h} {bin} chat --server {addr} --nick ana --known-servers {known}",
        h = quote(home_s),
        bin = quote(BIN),
        known = quote(known.to_str().expect("UTF-8 temp path")),
    );
    tmux(&cleanup, &["new-session", "-d", "-s", "tui", "-x", "120", "-y", "30", &command]);
    let shown = wait_screen(&cleanup, "tui", "the lobby", |s| s.contains("you joined #lobby"));
    assert!(shown.contains("first visit: server key"), "no key fingerprint:\n{shown}");

    let mut bob = Plain::start(&mut cleanup, &addr, "bob", home);
    bob.wait_line("its login", |l| l.contains("you joined #lobby"));
    wait_screen(&cleanup, "tui", "bob in the member list", |s| s.contains("│bob"));

    // Tab completes a member's nickname, addressed at the line start.
    tmux(&cleanup, &["send-keys", "-t", "tui", "-l", "bo"]);
    tmux(&cleanup, &["send-keys", "-t", "tui", "Tab"]);
    wait_screen(&cleanup, "tui", "the completed nickname", |s| input_line(s).ends_with("bob:"));
    tmux(&cleanup, &["send-keys", "-t", "tui", "-l", "hello from the tui, ünïcödé"]);
    tmux(&cleanup, &["send-keys", "-t", "tui", "Enter"]);
    bob.wait_line("ana's line", |l| l.contains("<ana> bob: hello from the tui, ünïcödé"));
    wait_screen(&cleanup, "tui", "ana's own line", |s| s.contains("<ana> bob: hello from the tui, ünïcödé"));

    bob.say("hi ana, loud and clear");
    let shown = wait_screen(&cleanup, "tui", "bob's reply", |s| s.contains("<bob> hi ana, loud and clear"));
    assert_eq!(input_line(&shown), "[#lobby]", "the input line was not cleared:\n{shown}");

    // A bracketed paste (tmux pastes with the markers, as the interface
    // asked for them): a few lines go out one by one, in order; more than
    // five ask first, and all go once confirmed (paced, none refused).
    tmux(&cleanup, &["set-buffer", "paste one\npaste two\npaste three"]);
    tmux(&cleanup, &["paste-buffer", "-p", "-t", "tui"]);
    for n in ["one", "two", "three"] {
        bob.wait_line("a pasted line", |l| l.contains(&format!("<ana> paste {n}")));
    }
    let seven: Vec<String> = (1..=7).map(|i| format!("pasted {i}")).collect();
    tmux(&cleanup, &["set-buffer", &seven.join("\n")]);
    tmux(&cleanup, &["paste-buffer", "-p", "-t", "tui"]);
    wait_screen(&cleanup, "tui", "the paste question", |s| input_line(s).contains("paste 7 lines? y/n"));
    tmux(&cleanup, &["send-keys", "-t", "tui", "-l", "y"]);
    for l in &seven {
        bob.wait_line("a confirmed pasted line", |s| s.ends_with(&format!("<ana> {l}")));
    }
    let order: Vec<&str> = bob.seen.iter().filter_map(|l| l.split_once("<ana> pasted ").map(|(_, n)| n)).collect();
    assert_eq!(order, ["1", "2", "3", "4", "5", "6", "7"], "all, once, in order");
    assert!(!bob.seen.iter().any(|l| l.contains("slow down")), "paced, not refused");

    // Ctrl-C says goodbye: the others see it and the interface exits.
    tmux(&cleanup, &["send-keys", "-t", "tui", "C-c"]);
    bob.wait_line("ana's quit", |l| l.contains("ana quit"));
    let deadline = Instant::now() + WAIT;
    while tmux_command(&cleanup.socket, &cleanup.tmux_dir)
        .args(["has-session", "-t", "tui"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "the interface did not exit after Ctrl-C");
        std::thread::sleep(POLL);
    }
    eprintln!("full-screen client test took {:.1} s", started.elapsed().as_secs_f64());
}

/// A long line typed into the interface while its scrollback is long: the
/// whole line is taken in at once (crossterm's default input source left
/// all but the first kilobyte unread until another key came) and Enter
/// sends it.
#[test]
fn a_long_line_typed_with_a_long_scrollback_goes_out_on_enter() {
    if !tmux_available_or_skip() {
        return;
    }
    let server = ServerProc::start("rate_per_second = 0\n", &["--console", "off"], &[]);
    let addr = server.addr();
    let home = tempfile::tempdir().expect("temp dir");
    let home = home.path();
    let tmux_dir = home.join("tmux");
    std::fs::create_dir_all(&tmux_dir).expect("tmux dir");
    let mut cleanup =
        Cleanup { socket: format!("udpchat-tui-long-{}", std::process::id()), tmux_dir, children: Vec::new() };
    let known = home.join("known_servers");
    let home_s = home.to_str().expect("UTF-8 temp path");
    let command = format!(
        "env HOME={h} XDG_CONFIG_HOME={h} {bin} chat --server {addr} --nick ana --known-servers {known}",
        h = quote(home_s),
        bin = quote(BIN),
        known = quote(known.to_str().expect("UTF-8 temp path")),
    );
    tmux(&cleanup, &["new-session", "-d", "-s", "tui", "-x", "120", "-y", "30", &command]);
    wait_screen(&cleanup, "tui", "the lobby", |s| s.contains("you joined #lobby"));

    let mut bob = Plain::start(&mut cleanup, &addr, "bob", home);
    bob.wait_line("its login", |l| l.contains("you joined #lobby"));
    for i in 1..=3000 {
        bob.say(&format!("scrollback {i}"));
    }
    wait_screen(&cleanup, "tui", "the scrollback", |s| s.contains("<bob> scrollback 3000"));

    let long: String = (0..4000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    tmux(&cleanup, &["send-keys", "-t", "tui", "-l", &long]);
    tmux(&cleanup, &["send-keys", "-t", "tui", "Enter"]);
    bob.wait_line("the long line", |l| l.ends_with(&format!("<ana> {long}")));
}
