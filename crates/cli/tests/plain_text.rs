//! The plain-text gateway (docs/PROTOCOL.md §17) with the clients it is
//! for: `nc -u`, bash's `/dev/udp`, and the classic Python clients in
//! `tests/fixtures/classic/`, each talking with a `udpchat chat --plain`
//! member through the real server binary on loopback.

mod common;

use std::process::Command;

use common::ServerProc;
use common::proc::Proc;

fn member(server: &ServerProc, nick: &str) -> Proc {
    let mut bob = Proc::spawn(
        nick,
        Command::new(common::BIN)
            .args(["chat", "--plain", "--server", &server.addr(), "--nick", nick, "--known-servers"])
            .arg(server.dir.path().join("known_servers")),
    );
    bob.expect("you joined #lobby");
    bob
}

fn have(tool: &str) -> bool {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{tool} is needed for this test in CI (.ci/run installs it)");
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

const CONFIG: &str = "plain_listen = \"127.0.0.1:0\"\n";

#[test]
fn netcat_and_bash_talk_with_a_udpchat_member() {
    if !have("nc") {
        return;
    }
    let mut server = ServerProc::start(CONFIG, &["--console", "off"], &[]);
    // On loopback (and turned off for every host-namespace test).
    server.wait_line(|l| l == "LAN discovery: off");
    server.wait_line(|l| l.contains("plain text on") && l.contains("UNENCRYPTED"));
    let mut bob = member(&server, "bob");
    let mut nc = Proc::spawn("nc", Command::new("nc").args(["-u", "127.0.0.1", &server.port.to_string()]));
    nc.type_line("dina");
    nc.expect("Welcome dina");
    bob.expect("dina joined #lobby (over plain UDP: unencrypted, address not verified)");
    nc.type_line("halo dari netcat");
    bob.expect("<dina> halo dari netcat");
    // Stored like any line: the console shows it once the commit is done.
    server.wait_line(|l| l.contains("#lobby <dina> halo dari netcat"));
    bob.type_line("hai dina");
    nc.expect("bob: hai dina");
    // A registered-looking or taken nickname is refused, and the next
    // datagram is tried as a nickname again.
    // bash reads a socket a byte at a time, which would lose the rest of
    // each datagram: dd takes one datagram per read.
    let script = format!(
        "exec 3<>/dev/udp/127.0.0.1/{}; get() {{ dd bs=65536 count=1 <&3 2>/dev/null; }}; \
         printf 'bob\\n' >&3; echo \"1: $(get)\"; printf 'sam\\n' >&3; echo \"2: $(get)\"; \
         printf 'halo dari bash\\n' >&3; echo \"3: $(get)\"; printf 'QUIT\\n' >&3",
        server.port
    );
    let mut bash = Proc::spawn("bash", Command::new("bash").arg("-c").arg(script));
    bash.expect("1: ERROR: nick"); // cut to 3 x 4 bytes (§17.4)
    bash.expect("2: Welcome sam");
    bob.expect("<sam> halo dari bash");
    bob.type_line("hai sam");
    bash.expect("3: bob: hai sam");
    bob.expect("sam quit");
    nc.type_line("QUIT");
    bob.expect("dina quit");
}

#[test]
fn the_server_password_as_pass_or_nick_colon_secret() {
    if !have("nc") {
        return;
    }
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[("UDPCHAT_SERVER_PASSWORD", "GAS1")]);
    let mut nc = Proc::spawn("nc", Command::new("nc").args(["-u", "127.0.0.1", &server.port.to_string()]));
    nc.type_line("dinda");
    // Cut to three times the 6 bytes sent (§17.4).
    nc.expect("ERROR: password");
    nc.type_line("PASS GAS1");
    nc.type_line("dinda");
    nc.expect("Welcome dinda");
    // Replies are at most 3x what dinda sent: a long line earns room for
    // the notice and the line below.
    nc.type_line("a line long enough to earn the notice and the next line");
    let mut nc2 = Proc::spawn("nc", Command::new("nc").args(["-u", "127.0.0.1", &server.port.to_string()]));
    nc2.type_line("ana:wrong");
    nc2.expect("ERROR: password (PASS secret)");
    nc2.type_line("ana:GAS1");
    nc2.expect("Welcome ana");
    nc.expect("-- ana joined (over plain UDP");
    nc2.type_line("hai");
    nc.expect("ana: hai");
}

fn python(server: &ServerProc, fixture: &str) -> Proc {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/classic/");
    Proc::spawn(
        fixture,
        Command::new("python3")
            .arg("-u")
            .arg(format!("{path}{fixture}"))
            .env("CHAT_HOST", "127.0.0.1")
            .env("CHAT_PORT", server.port.to_string()),
    )
}

#[test]
fn the_classic_python_clients_talk_with_a_udpchat_member() {
    if !have("python3") {
        return;
    }
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[]);
    let mut bob = member(&server, "bob");
    // ichiro: nickname, the welcome, then one datagram read per line sent.
    let mut ichiro = python(&server, "ichiro_client.py");
    ichiro.type_line("dinda");
    ichiro.expect("Welcome dinda");
    bob.expect("dinda joined #lobby (over plain UDP");
    ichiro.type_line("halo dari ichiro");
    bob.expect("<dinda> halo dari ichiro");
    bob.type_line("hai dinda");
    ichiro.expect("Server: bob: hai dinda");
    // Python UDP Group Chat: `name : text` in every datagram, no nickname
    // datagram of its own.
    let mut group = python(&server, "groupchat_client.py");
    group.type_line("ryo");
    group.type_line("halo dari ryo");
    bob.expect("<ryo> halo dari ryo");
    group.expect("Welcome ryo");
    group.type_line("lagi");
    bob.expect("<ryo> lagi");
    bob.type_line("hai ryo");
    group.expect("bob: hai ryo");
}
