//! The chat window's own behaviour, with the model fed by hand (no
//! server): 100,000 lines laid out only where visible and the scrollback
//! bounded, Ctrl+K and Ctrl+N between conversations, Tab completion of
//! commands, rooms and nicknames, Up/Down recall of typed lines.

mod common;

use common::*;
use egui::{Key, Modifiers};
use egui_kittest::kittest::Queryable;
use udpchat_client::ClientEvent;
use udpchat_client::chat::{Line, LineKind, ServerMsg};
use udpchat_gui::server_view::{GUI_SCROLLBACK, ServerView};

fn joined(room: &str, members: &[&str]) -> ClientEvent {
    ClientEvent::Server(ServerMsg::Joined {
        room: room.into(),
        head: 0,
        topic: String::new(),
        members: members.iter().map(|s| s.to_string()).collect(),
    })
}

fn line(room: &str, from: &str, text: String) -> ClientEvent {
    ClientEvent::Server(ServerMsg::Line(Line {
        room: room.into(),
        seq: 1,
        time_ms: 0,
        from: from.into(),
        text,
        kind: LineKind::Normal,
        history: false,
    }))
}

/// The window showing a logged-in server that nothing answers.
fn window() -> (Gui, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    {
        let app = h.state_mut();
        let mut v = ServerView::new(99, "127.0.0.1:9", "ana");
        v.model.on_event(&ClientEvent::Server(ServerMsg::Welcome {
            nick: "ana".into(),
            server_name: "t".into(),
            motd: String::new(),
            operator: false,
        }));
        v.model.on_event(&joined("lobby", &["ana", "bob", "bert"]));
        v.model.on_event(&joined("rust", &["ana", "carol"]));
        // A private conversation (its nick has an arrow: the built-in
        // fonts must have every glyph the rows use, or egui panics here).
        v.model.on_event(&ClientEvent::Server(ServerMsg::Private {
            id: 1,
            seq: 0,
            from: "carol".into(),
            to: "ana".into(),
            text: "psst… — ok?".into(),
            time_ms: 0,
            history: false,
        }));
        v.model.goto(1);
        app.servers.push(v);
        app.show_form = false;
    }
    h.step();
    (h, dir)
}

fn room(h: &Gui) -> Option<String> {
    h.state().servers[0].model.current_room().map(str::to_owned)
}

#[test]
fn a_hundred_thousand_lines_are_drawn_only_where_visible() {
    let (mut h, _dir) = window();
    {
        let v = &mut h.state_mut().servers[0];
        for i in 0..GUI_SCROLLBACK + 500 {
            v.model.on_event(&line("lobby", "bob", format!("line {i}")));
        }
        assert_eq!(v.model.current().lines.len(), GUI_SCROLLBACK, "the scrollback is bounded");
    }
    h.step();
    h.step();
    let shown = h.query_all_by_label_contains("line ").count();
    assert!(shown > 5 && shown < 200, "{shown} rows laid out");
    assert!(shows(&h, &format!("line {}", GUI_SCROLLBACK + 499)), "the newest line is in view");
    // Page up a few times: other rows, still only a screenful.
    for _ in 0..3 {
        h.key_press(Key::PageUp);
        h.step();
    }
    h.step();
    assert!(!shows(&h, &format!("line {}", GUI_SCROLLBACK + 499)));
    let shown = h.query_all_by_label_contains("line ").count();
    assert!(shown > 5 && shown < 200, "{shown} rows laid out");
}

#[test]
fn keyboard_moves_between_conversations() {
    let (mut h, _dir) = window();
    assert_eq!(room(&h).as_deref(), Some("lobby"));
    // The private conversation is the last entry: Ctrl+P from the server
    // buffer wraps to it, and it draws.
    h.state_mut().servers[0].model.goto(0);
    h.key_press_modifiers(Modifiers::COMMAND, Key::P);
    h.step();
    h.step();
    assert_eq!(h.state().servers[0].model.current().peer(), Some("carol"));
    assert!(shows(&h, "psst"));
    h.state_mut().servers[0].model.goto(1);
    h.step();
    h.key_press_modifiers(Modifiers::COMMAND, Key::N);
    h.step();
    assert_eq!(room(&h).as_deref(), Some("rust"));
    h.key_press_modifiers(Modifiers::COMMAND, Key::P);
    h.step();
    assert_eq!(room(&h).as_deref(), Some("lobby"));
    h.key_press_modifiers(Modifiers::COMMAND, Key::K);
    h.step();
    h.step();
    h.get_by_label("Jump to a conversation");
    h.event(egui::Event::Text("rus".into()));
    h.step();
    h.key_press(Key::Enter);
    h.step();
    assert_eq!(room(&h).as_deref(), Some("rust"));
    assert!(h.query_by_label("Jump to a conversation").is_none(), "the jump dialog closed");
}

#[test]
fn tab_completes_and_up_recalls() {
    let (mut h, _dir) = window();
    type_line(&mut h, "ana", "/jo");
    h.key_press(Key::Tab);
    h.step();
    assert_eq!(h.state().servers[0].input, "/join ");
    h.event(egui::Event::Text("#ru".into()));
    h.step();
    h.key_press(Key::Tab);
    h.step();
    assert_eq!(h.state().servers[0].input, "/join #rust ");
    h.state_mut().servers[0].input.clear();
    h.step();
    h.event(egui::Event::Text("b".into()));
    h.step();
    h.key_press(Key::Tab);
    h.step();
    assert_eq!(h.state().servers[0].input, "bert: ");
    h.key_press(Key::Tab);
    h.step();
    assert_eq!(h.state().servers[0].input, "bob: ");
    h.key_press(Key::Enter);
    h.step();
    assert_eq!(h.state().servers[0].input, "");
    h.key_press(Key::ArrowUp);
    h.step();
    assert_eq!(h.state().servers[0].input, "bob: ");
    h.key_press(Key::ArrowDown);
    h.step();
    assert_eq!(h.state().servers[0].input, "");
    // /help ends with this window's keys, not the terminal's.
    type_line(&mut h, "ana", "/help");
    h.key_press(Key::Enter);
    h.step();
    h.step();
    assert!(shows(&h, "Ctrl+K jump to a room"));
}

#[test]
fn the_status_bar_shows_reconnecting_and_lines_waiting_for_the_server() {
    let (mut h, _dir) = window();
    h.state_mut().servers[0].model.on_event(&ClientEvent::Rtt(std::time::Duration::from_micros(700)));
    h.step();
    assert!(shows(&h, "connected, rtt 0.7 ms"));
    let said = udpchat_client::Input::Say { room: "lobby".into(), text: "are you there?".into(), action: false };
    h.state_mut().servers[0].model.sending(5, &said);
    h.state_mut().servers[0].model.on_event(&ClientEvent::Connecting { attempt: 2 });
    h.step();
    h.step();
    assert!(shows(&h, "reconnecting (attempt 2)"));
    assert!(shows(&h, "1 line(s) waiting for the server"));
    assert!(shows(&h, "are you there? (sending…)"));
    let back = ServerMsg::Line(Line {
        room: "lobby".into(),
        seq: 9,
        time_ms: 0,
        from: "ana".into(),
        text: "are you there?".into(),
        kind: LineKind::Normal,
        history: false,
    });
    h.state_mut().servers[0].model.on_event(&ClientEvent::Delivered { id: 5, msg: back });
    h.step();
    assert!(!shows(&h, "waiting for the server") && !shows(&h, "(sending…)"));
    assert!(shows(&h, "are you there?"));
}

#[test]
fn the_window_follows_the_system_theme() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    // As eframe starts: follow the system (the app never picks a theme).
    h.ctx.set_theme(egui::ThemePreference::System);
    for theme in [egui::Theme::Light, egui::Theme::Dark, egui::Theme::Light] {
        h.input_mut().system_theme = Some(theme);
        h.step();
        h.step();
        assert_eq!(h.ctx.global_style().visuals.dark_mode, theme == egui::Theme::Dark, "{theme:?}");
    }
}
