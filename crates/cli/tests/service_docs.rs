//! Shell completions and man pages come from the same clap definitions as
//! the parser: each names every subcommand, the bash script parses, and
//! the man pages render with man(1) when it is installed.

mod common;

use std::process::Command;

use common::{BIN, WAIT, run_bounded};

fn stdout_of(args: &[&str]) -> String {
    let out = run_bounded(Command::new(BIN).args(args), WAIT);
    assert!(out.status.success(), "udpchat {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

const SUBCOMMANDS: [&str; 5] = ["server", "chat", "send", "user", "keygen"];

#[test]
fn completions_name_every_subcommand_and_bash_parses_them() {
    let bash = stdout_of(&["completions", "bash"]);
    for sub in SUBCOMMANDS {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    assert!(bash.contains("--data-dir") && bash.contains("--console"), "server flags missing");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("udpchat.bash");
    std::fs::write(&script, &bash).unwrap();
    let check = run_bounded(Command::new("bash").arg("-n").arg(&script), WAIT);
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));

    let zsh = stdout_of(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef udpchat"), "{}", &zsh[..zsh.len().min(80)]);
    let fish = stdout_of(&["completions", "fish"]);
    assert!(fish.contains("complete -c udpchat") && fish.contains("server"), "fish completion");

    let bad = run_bounded(Command::new(BIN).args(["completions", "tcsh"]), WAIT);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("bash"));
}

#[test]
fn man_pages_document_every_command() {
    let page = stdout_of(&["manpage"]);
    assert!(page.contains(".TH udpchat 1"), "{}", &page[..page.len().min(200)]);
    for sub in SUBCOMMANDS {
        assert!(page.contains(&format!("udpchat\\-{sub}(1)")), "main page does not refer to {sub}");
    }
    let dir = tempfile::tempdir().unwrap();
    stdout_of(&["manpage", "--dir", dir.path().to_str().unwrap()]);
    for name in ["udpchat.1", "udpchat-server.1", "udpchat-user-add.1"] {
        assert!(dir.path().join(name).is_file(), "{name} not written");
    }
    let server = std::fs::read_to_string(dir.path().join("udpchat-server.1")).unwrap();
    assert!(server.contains("\\-\\-data\\-dir") && server.contains("\\-\\-password\\-file"), "{server}");
    // Rendered as a reader sees it, when man is there (it is optional).
    if Command::new("man").arg("--version").output().is_ok() {
        let shown = run_bounded(
            Command::new("man").arg("-l").arg(dir.path().join("udpchat-server.1")).env("MANPAGER", "cat"),
            WAIT,
        );
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success() && text.contains("Run a chat server"), "{text}");
    }
}
