//! What operators set survives a restart, end to end through the binary:
//! a ban (with a duration) and a topic set at the console are stored, and
//! after the server is killed (-9) and started again on the same data the
//! banned nickname is still refused and the room still has its topic.

mod common;

use std::time::{Duration, Instant};

use common::ServerProc;
use common::raw::RawClient;
use udpchat_client::chat::{RefuseCode, ServerMsg};
use udpchat_server::store::{SqliteStore, Store};

#[test]
fn a_ban_and_a_topic_survive_a_restart() {
    let mut server = ServerProc::start("", &["--console", "on"], &[]);
    server.type_line("/ban eve 2h flooding");
    server.wait_line(|l| l.contains("eve banned for 2h by operator"));
    server.type_line("/topic kept across restarts");
    server.wait_line(|l| l.contains("set the topic of #lobby: kept across restarts"));
    // The writer thread records them just after the console says so.
    let data = server.data_dir();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = SqliteStore::open_admin(&data).and_then(|s| s.admin_state()).expect("read the database");
        if state.bans.len() == 1 && state.topics.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the ban and the topic were never stored: {state:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = server.port;
    let dir = server.kill();
    let server = ServerProc::restart(dir, port, "", &["--console", "off"]);
    let addr = server.addr().parse().unwrap();

    let mut eve = RawClient::connect(addr);
    let got = eve.login_with("eve", Vec::new());
    assert!(got.iter().any(|m| matches!(m, ServerMsg::LoginRefused { code: RefuseCode::Banned, .. })), "{got:?}");
    let mut ana = RawClient::connect(addr);
    let mut got = ana.login_with("ana", Vec::new());
    got.extend(ana.pump(Duration::from_millis(300)));
    assert!(
        got.iter().any(|m| matches!(m, ServerMsg::Joined { topic, .. } if topic == "kept across restarts")),
        "{got:?}"
    );
}
