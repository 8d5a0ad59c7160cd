//! Reload and admin commands through the chat core, without sockets: new
//! settings reach live sessions (a fresh Limits for those on the server's
//! rate; an account's own rate stays), what needs a restart is named and
//! kept, and an admin command's answers go to the admin, not the console.

mod support;

use support::{Harness, settings};
use udpchat_chat::ServerMsg;
use udpchat_server::settings::Settings;

fn limits(msgs: &[ServerMsg]) -> Vec<&ServerMsg> {
    msgs.iter().filter(|m| matches!(m, ServerMsg::Limits { .. })).collect()
}

#[test]
fn reload_resends_limits_keeps_account_rates_and_names_restarts() {
    let start = Settings { rate_burst: 5, rate_per_second: 2.0, motd: "old".into(), ..settings() };
    let mut t = Harness::new(start.clone());
    t.store.add_account("bot", "password1", false);
    t.store.set_rate("bot", 50);
    let ana = t.login("ana");
    let bot = t.connect("192.0.2.1:1001");
    t.login_as(bot, "bot", "password1", Vec::new());
    let (_, _) = (t.take(ana), t.take(bot));

    let new = Settings {
        rate_burst: 7,
        rate_per_second: 3.0,
        max_line_bytes: 1000,
        motd: "new".into(),
        idle_timeout_secs: 60,
        ..start.clone()
    };
    let clock = t.clock();
    let said = t.chat.reload(clock, new.clone(), &mut t.out);
    assert!(said.iter().any(|l| l == "motd changed"), "{said:?}");
    assert!(said.iter().any(|l| l.starts_with("restart: idle_timeout_secs changed")), "{said:?}");
    assert!(!said.iter().any(|l| l.contains("rate_burst") && l.starts_with("restart")), "{said:?}");
    assert_eq!(
        limits(&t.take(ana)),
        [&ServerMsg::Limits { max_line_bytes: 1000, rate_burst: 7, rate_milli: 3000 }],
        "ana goes by the server's rate"
    );
    assert_eq!(
        limits(&t.take(bot)),
        [&ServerMsg::Limits { max_line_bytes: 1000, rate_burst: 7, rate_milli: 50_000 }],
        "the bot keeps its account's rate"
    );
    // Newcomers get the new MOTD.
    let cat = t.connect("192.0.2.1:1002");
    t.login_as(cat, "cat", "", Vec::new());
    let got = t.take(cat);
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Welcome { motd, .. } if motd == "new")), "{got:?}");

    // The same settings again: nothing changes, nobody is told anything.
    let clock = t.clock();
    let said = t.chat.reload(clock, new, &mut t.out);
    assert!(said.iter().any(|l| l == "restart: idle_timeout_secs changed; it takes effect at the next start"));
    assert!(limits(&t.take(ana)).is_empty());
    // The running value stayed: a second reload reports it again rather
    // than forgetting it ever changed.
    let clock = t.clock();
    let said = t.chat.reload(clock, start, &mut t.out);
    assert!(said.iter().any(|l| l == "motd changed") && !said.iter().any(|l| l.contains("idle_timeout")), "{said:?}");
}

#[test]
fn admin_answers_go_to_the_admin_not_the_console() {
    let mut t = Harness::new(settings());
    let ana = t.login("ana");
    let _ = t.chat.take_console();
    let clock = t.clock();
    let answers = t.chat.admin(clock, Some("lobby"), "/who", &mut t.out);
    assert_eq!(answers, ["-- #lobby: ana"]);
    assert!(t.chat.take_console().is_empty(), "a /who answer belongs to whoever asked");

    let clock = t.clock();
    let answers = t.chat.admin(clock, Some("lobby"), "//slash at the start", &mut t.out);
    assert_eq!(answers, ["-- said in #lobby as operator"]);
    t.end_batch();
    t.settle();
    let got = t.take(ana);
    assert!(
        got.iter().any(|m| matches!(m, ServerMsg::Line(l) if l.from == "operator" && l.text == "/slash at the start")),
        "{got:?}"
    );

    let clock = t.clock();
    let answers = t.chat.admin(clock, Some("nowhere"), "/who", &mut t.out);
    assert_eq!(answers, ["error: no room #nowhere (nobody has joined it)"]);
    // Announcements (a ban) go to both: the console records every action.
    let clock = t.clock();
    let answers = t.chat.admin(clock, None, "/ban eve 1h", &mut t.out);
    assert!(answers.iter().any(|a| a.contains("eve banned for 1h by operator")), "{answers:?}");
    assert!(t.chat.take_console().iter().any(|l| l.contains("eve banned for 1h by operator")));
}
