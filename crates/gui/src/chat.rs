//! The chat window: conversations of every connected server in a side
//! list with unread and mention counts, the topic on top (editable by the
//! room's members, as the server allows), the lines in the middle
//! (`rows.rs`), the members on the right, the input line and a status bar
//! with the connection state, round-trip time and lines still waiting for
//! the server. Keyboard: Enter sends, Up/Down recall typed lines, Tab
//! completes, Ctrl+N/Ctrl+P (or Alt+Down/Alt+Up, Ctrl+PageDown/PageUp)
//! switch conversations, Ctrl+K jumps to one by name, Ctrl+O connects to
//! another server, Ctrl+Q quits.

use egui::{Key, KeyboardShortcut, Modifiers, RichText};
use udpchat_client::Input;
use udpchat_client::model::{Command, Conn};

use crate::app::App;
use crate::rows;

const NEXT: [KeyboardShortcut; 3] = [
    KeyboardShortcut::new(Modifiers::COMMAND, Key::N),
    KeyboardShortcut::new(Modifiers::ALT, Key::ArrowDown),
    KeyboardShortcut::new(Modifiers::COMMAND, Key::PageDown),
];
const PREV: [KeyboardShortcut; 3] = [
    KeyboardShortcut::new(Modifiers::COMMAND, Key::P),
    KeyboardShortcut::new(Modifiers::ALT, Key::ArrowUp),
    KeyboardShortcut::new(Modifiers::COMMAND, Key::PageUp),
];
const JUMP: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::K);
const ADD_SERVER: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
const QUIT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Q);

/// The shortcuts, for the help line and the README.
pub const SHORTCUTS: &str = "keys: Enter send · Up/Down recall · Tab complete · Ctrl+N/Ctrl+P next/previous room · \
                             Ctrl+K jump to a room · Ctrl+O another server · PageUp/PageDown scroll · Ctrl+Q quit";

/// What the chat window keeps between frames.
#[derive(Debug, Default)]
pub struct ChatUi {
    /// Give the input line the keyboard on the next frame.
    pub focus_input: bool,
    /// Ctrl+K: the name typed so far.
    pub jump: Option<String>,
    /// The topic being edited.
    pub topic_edit: Option<String>,
    /// The window title last set (set again only when it changes).
    title: String,
}

/// Every conversation of every server, in side-list order.
fn all(app: &App) -> Vec<(usize, usize)> {
    app.servers.iter().enumerate().flat_map(|(s, v)| (0..v.model.conversations().len()).map(move |c| (s, c))).collect()
}

fn go(app: &mut App, (s, c): (usize, usize)) {
    app.current = s;
    if let Some(v) = app.servers.get_mut(s) {
        v.model.goto(c);
    }
    app.chat.focus_input = true;
    app.chat.topic_edit = None;
}

/// Moves `step` conversations on, across servers.
pub fn step(app: &mut App, forward: bool) {
    let list = all(app);
    let Some(v) = app.current_server() else { return };
    let here = list.iter().position(|&p| p == (app.current, v.model.focused())).unwrap_or(0);
    let n = list.len();
    let next = if forward { (here + 1) % n } else { (here + n - 1) % n };
    go(app, list[next]);
}

/// Ctrl+Q, anywhere: close the window as its close button does (eframe
/// then saves the window's size and position, and `on_exit` says goodbye
/// to the servers).
pub fn quit_shortcut(ctx: &egui::Context) {
    if ctx.input_mut(|i| i.consume_shortcut(&QUIT)) {
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }
}

fn shortcuts(app: &mut App, ctx: &egui::Context) {
    let (next, prev, jump, add) = ctx.input_mut(|i| {
        (
            NEXT.iter().any(|s| i.consume_shortcut(s)),
            PREV.iter().any(|s| i.consume_shortcut(s)),
            i.consume_shortcut(&JUMP),
            i.consume_shortcut(&ADD_SERVER),
        )
    });
    if next {
        step(app, true);
    }
    if prev {
        step(app, false);
    }
    if jump {
        app.chat.jump = Some(String::new());
    }
    if add {
        app.show_form = true;
    }
}

pub fn show(app: &mut App, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    shortcuts(app, &ctx);
    if app.servers.is_empty() {
        return;
    }
    status_bar(app, ui);
    input_line(app, ui);
    side_list(app, ui);
    members(app, ui);
    topic_bar(app, ui);
    egui::CentralPanel::default().show(ui, |ui| lines(app, ui));
    jump(app, &ctx);
    paste_question(app, &ctx);
    let title = app.current_server().map(|v| format!("udpchat — {} ({})", v.model.current().name(), v.address));
    if let Some(title) = title.filter(|t| *t != app.chat.title) {
        app.chat.title.clone_from(&title);
        ctx.send_viewport_cmd(egui::ViewportCommand::Title(title));
    }
}

fn status_bar(app: &mut App, ui: &mut egui::Ui) {
    let Some(v) = app.servers.get_mut(app.current) else { return };
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal(|ui| {
            let conn = v.model.conn();
            let colour = match conn {
                Conn::Connected { .. } => egui::Color32::from_rgb(60, 170, 80),
                Conn::Connecting { .. } | Conn::LoggingIn => egui::Color32::from_rgb(220, 160, 30),
                _ => egui::Color32::from_rgb(200, 60, 50),
            };
            // A dot drawn, not a glyph: the built-in fonts have no U+25CF.
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().circle_filled(rect.center(), 4.5, colour);
            ui.label(conn.describe());
            ui.separator();
            ui.label(format!("{} on {}", v.model.nick(), v.address));
            if conn == Conn::Closed
                && ui.small_button("Close").on_hover_text("remove this server from the list").clicked()
            {
                v.outgoing.push_back(Command::Exit);
            }
            let pending = v.model.pending_lines() + v.outgoing.len();
            if pending > 0 {
                ui.separator();
                ui.label(RichText::new(format!("{pending} line(s) waiting for the server")).italics());
            }
        });
    });
}

fn input_line(app: &mut App, ui: &mut egui::Ui) {
    let focus = std::mem::take(&mut app.chat.focus_input);
    let Some(v) = app.servers.get_mut(app.current) else { return };
    egui::Panel::bottom("input").show(ui, |ui| {
        ui.add_space(4.0);
        let id = egui::Id::unique("chat-input");
        let has_focus = ui.ctx().memory(|m| m.has_focus(id));
        if has_focus {
            // Keys the input line handles itself, taken before the text
            // field sees them (it would move the focus or the cursor).
            let (enter, up, down, tab, pastes) = ui.input_mut(|i| {
                let pastes: Vec<String> = i
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        egui::Event::Paste(t) if t.contains(['\n', '\r']) => Some(t.clone()),
                        _ => None,
                    })
                    .collect();
                i.events.retain(|e| !matches!(e, egui::Event::Paste(t) if t.contains(['\n', '\r'])));
                (
                    i.consume_key(Modifiers::NONE, Key::Enter),
                    i.consume_key(Modifiers::NONE, Key::ArrowUp),
                    i.consume_key(Modifiers::NONE, Key::ArrowDown),
                    i.consume_key(Modifiers::NONE, Key::Tab),
                    pastes,
                )
            });
            for p in pastes {
                v.pasted(&p);
            }
            if enter {
                v.submit();
            }
            if up {
                v.history_up();
            }
            if down {
                v.history_down();
            }
            if tab {
                v.complete();
            }
        }
        ui.horizontal(|ui| {
            let hint = if v.model.awaiting_nick() { "type another nickname" } else { "type a message or /help" };
            // The nickname labels the input line, as in HexChat.
            let nick = ui.label(RichText::new(v.model.nick()).strong());
            let send_width = 70.0;
            let edit = egui::TextEdit::singleline(&mut v.input)
                .id(id)
                .hint_text(hint)
                .desired_width(ui.available_width() - send_width)
                .lock_focus(true);
            let mut out = edit.show(ui);
            *out.response = Clone::clone(&*out.response).labelled_by(nick.id);
            if std::mem::take(&mut v.cursor_to_end) {
                let end = egui::text::CCursor::new(v.input.chars().count());
                out.state.cursor.set_char_range(Some(egui::text::CCursorRange::one(end)));
                out.state.store(ui.ctx(), id);
            }
            if focus {
                out.response.request_focus();
            }
            if ui.button("Send").clicked() {
                v.submit();
                out.response.request_focus();
            }
        });
        ui.add_space(2.0);
    });
}

fn side_list(app: &mut App, ui: &mut egui::Ui) {
    let mut goto = None;
    let mut add = false;
    egui::Panel::left("conversations").resizable(true).default_size(170.0).show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (s, v) in app.servers.iter().enumerate() {
                ui.add_space(4.0);
                ui.label(RichText::new(&v.address).small().weak());
                for (c, conv) in v.model.conversations().iter().enumerate() {
                    let selected = s == app.current && c == v.model.focused();
                    let mut text = conv.name();
                    if conv.unread > 0 {
                        text = format!("{text}  ({})", conv.unread);
                    }
                    if conv.mentions > 0 {
                        text = format!("{text} @{}", conv.mentions);
                    }
                    let mut rich = RichText::new(text);
                    if conv.unread > 0 {
                        rich = rich.strong();
                    }
                    if conv.mentions > 0 {
                        rich = rich.color(ui.visuals().warn_fg_color);
                    }
                    if ui.selectable_label(selected, rich).clicked() {
                        goto = Some((s, c));
                    }
                }
            }
            ui.add_space(8.0);
            if ui.small_button("+ another server").on_hover_text("Ctrl+O").clicked() {
                add = true;
            }
        });
    });
    if let Some(p) = goto {
        go(app, p);
    }
    if add {
        app.show_form = true;
    }
}

fn members(app: &mut App, ui: &mut egui::Ui) {
    let Some(v) = app.servers.get_mut(app.current) else { return };
    if v.model.current().room().is_none() {
        return;
    }
    let mut address = None;
    egui::Panel::right("members").resizable(true).default_size(140.0).show(ui, |ui| {
        ui.label(RichText::new(format!("{} here", v.model.current().members.len())).weak());
        egui::ScrollArea::vertical().show(ui, |ui| {
            for m in &v.model.current().members {
                let colour = rows::nick_colour(m, ui.visuals().dark_mode);
                let r = ui.add(egui::Label::new(RichText::new(m).color(colour)).sense(egui::Sense::click()));
                let r = r.on_hover_text("click to address, double-click to write privately");
                if r.double_clicked() {
                    address = Some(format!("/msg {m} "));
                } else if r.clicked() {
                    address = Some(format!("{m}: "));
                }
            }
        });
    });
    if let Some(text) = address {
        v.input = text;
        v.cursor_to_end = true;
        app.chat.focus_input = true;
    }
}

fn topic_bar(app: &mut App, ui: &mut egui::Ui) {
    let Some(v) = app.servers.get_mut(app.current) else { return };
    let conv = v.model.current();
    let name = conv.name();
    let room = conv.room().map(str::to_owned);
    let topic = conv.topic.clone();
    let mut set = None;
    let mut earlier = false;
    egui::Panel::top("topic").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.label(RichText::new(&name).strong().size(16.0));
            match (&room, app.chat.topic_edit.as_mut()) {
                (Some(_), Some(edit)) => {
                    let r = ui.add(egui::TextEdit::singleline(edit).desired_width(ui.available_width() - 140.0));
                    r.request_focus();
                    if ui.button("Set").clicked() || (r.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter))) {
                        set = Some(edit.clone());
                    }
                    if ui.button("Cancel").clicked() || ui.input(|i| i.key_pressed(Key::Escape)) {
                        set = Some(topic.clone());
                    }
                }
                (Some(_), None) => {
                    let shown = if topic.is_empty() {
                        RichText::new("no topic").weak().italics()
                    } else {
                        RichText::new(&topic)
                    };
                    ui.add(egui::Label::new(shown).truncate());
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if ui.small_button("Edit topic").clicked() {
                            app.chat.topic_edit = Some(topic.clone());
                        }
                        if ui.small_button("Earlier lines").on_hover_text("or scroll to the top").clicked() {
                            earlier = true;
                        }
                    });
                }
                (None, _) => {}
            }
        });
    });
    if let (Some(text), Some(room)) = (set, room) {
        app.chat.topic_edit = None;
        if text != topic {
            v.outgoing.push_back(Command::Send(Input::Topic { room, topic: Some(text) }));
        }
        app.chat.focus_input = true;
    }
    if earlier {
        v.want_history();
    }
}

fn lines(app: &mut App, ui: &mut egui::Ui) {
    let Some(v) = app.servers.get_mut(app.current) else { return };
    let (inserted, last) = v.take_inserted_above();
    let row = rows::row_height(ui);
    let page = ui.input_mut(|i| {
        if i.consume_key(Modifiers::NONE, Key::PageUp) {
            -1.0
        } else if i.consume_key(Modifiers::NONE, Key::PageDown) {
            1.0
        } else {
            0.0
        }
    });
    let offset = match last {
        // A page of history went in above: keep the same lines in view.
        Some(last) if inserted > 0 => Some(last + inserted as f32 * row),
        Some(last) if page != 0.0 => Some((last + page * (ui.available_height() - row)).max(0.0)),
        _ => None,
    };
    let conv = v.model.current();
    let id = egui::Id::unique(("lines", v.conn, &conv.target));
    let out = rows::show(ui, id, &conv.lines, v.model.nick(), offset);
    v.scrolled_to(out.state.clamped_offset().y);
    let scrollable = out.content_size.y > out.inner_rect.height() + 1.0;
    if scrollable && out.state.clamped_offset().y <= 0.5 && v.want_history() {
        ui.ctx().request_repaint();
    }
}

fn jump(app: &mut App, ctx: &egui::Context) {
    let Some(query) = app.chat.jump.as_mut() else { return };
    let mut chosen = None;
    let mut close = false;
    let q = query.to_lowercase();
    let matches: Vec<(usize, usize, String)> = all(app)
        .into_iter()
        .filter_map(|(s, c)| {
            let name = app.servers[s].model.conversations()[c].name();
            name.to_lowercase().contains(q.trim_start_matches('#')).then_some((s, c, name))
        })
        .collect();
    let Some(query) = app.chat.jump.as_mut() else { return };
    egui::Modal::new(egui::Id::unique("jump")).show(ctx, |ui| {
        ui.label("Jump to a conversation");
        let r = ui.add(egui::TextEdit::singleline(query).hint_text("name"));
        r.request_focus();
        for (s, c, name) in matches.iter().take(10) {
            if ui.selectable_label(false, name).clicked() {
                chosen = Some((*s, *c));
            }
        }
        if ui.input(|i| i.key_pressed(Key::Enter)) {
            chosen = matches.first().map(|(s, c, _)| (*s, *c));
            close = true;
        }
        if ui.input(|i| i.key_pressed(Key::Escape)) {
            close = true;
        }
    });
    if let Some(p) = chosen {
        go(app, p);
        close = true;
    }
    if close {
        app.chat.jump = None;
        app.chat.focus_input = true;
    }
}

/// "Send N pasted lines?", while a long paste waits for an answer.
fn paste_question(app: &mut App, ctx: &egui::Context) {
    let Some(v) = app.servers.get_mut(app.current) else { return };
    let Some(n) = v.paste.as_ref().map(Vec::len) else { return };
    let mut answer = None;
    let place = v.model.current().name();
    egui::Modal::new(egui::Id::unique("paste")).show(ctx, |ui| {
        ui.label(format!("Send {n} pasted lines to {place}, one by one?"));
        ui.horizontal(|ui| {
            if ui.button("Send them").clicked() || ui.input(|i| i.key_pressed(Key::Enter)) {
                answer = Some(true);
            }
            if ui.button("Cancel").clicked() || ui.input(|i| i.key_pressed(Key::Escape)) {
                answer = Some(false);
            }
        });
    });
    if let Some(yes) = answer {
        v.confirm_paste(yes);
        app.chat.focus_input = true;
    }
}
