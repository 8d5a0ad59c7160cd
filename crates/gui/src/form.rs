//! The connect form, as the classic Tkinter chats had it (server address,
//! nickname, password) plus what udpchat adds (an account password,
//! "remember me"), and the wording of everything that can go wrong while
//! logging in, shown in the form itself next to the field to fix. The
//! form only edits its fields and says when the user asked to connect;
//! `app.rs` carries that out.

use egui::{Color32, RichText};
use udpchat_client::chat::RefuseCode;

use crate::config::GuiConfig;

/// The reference server's port (udpchat_server::DEFAULT_PORT), for the
/// address filled in on a first run.
pub const DEFAULT_PORT: u16 = 7667;

/// A server found on the local network (LAN discovery, docs/PROTOCOL.md
/// §16), offered in the address field's drop-down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// What the server calls itself.
    pub name: String,
    /// `HOST:PORT`, as put into the address field when picked.
    pub address: String,
}

/// Which field gets the keyboard focus on the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Server,
    Nick,
    Password,
    AccountPassword,
}

#[derive(Debug, Default)]
pub struct Form {
    pub server: String,
    pub nick: String,
    pub password: String,
    pub account_password: String,
    pub remember_me: bool,
    pub remember_passwords: bool,
    /// What went wrong, in words that say what to do.
    pub error: Option<String>,
    pub focus: Option<Field>,
    /// Shown under the button while a connection is being set up.
    pub busy: Option<String>,
    /// Servers on the LAN (see [`Discovered`]).
    pub discovered: Vec<Discovered>,
    /// What the last search of the LAN found, or that one runs.
    pub lan_status: Option<String>,
}

impl Form {
    pub fn from_config(c: &GuiConfig) -> Self {
        Form {
            server: c.servers.first().cloned().unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}")),
            nick: c.nick.clone(),
            password: c.server_password.clone(),
            account_password: c.account_password.clone(),
            remember_me: c.remember_me,
            remember_passwords: c.remember_passwords,
            focus: Some(if c.nick.is_empty() { Field::Nick } else { Field::Server }),
            ..Form::default()
        }
    }

    /// Copies what the user chose to remember into `c`.
    pub fn remember(&self, c: &mut GuiConfig) {
        c.used_server(self.server.trim());
        c.remember_me = self.remember_me;
        c.remember_passwords = self.remember_me && self.remember_passwords;
        c.nick = self.nick.trim().to_owned();
        c.server_password = self.password.clone();
        c.account_password = self.account_password.clone();
    }

    /// The form's own checks before anything is sent.
    pub fn check(&mut self) -> bool {
        let (field, error) = if self.server.trim().is_empty() {
            (Field::Server, "Type the server's address, like 192.168.1.10:7667.")
        } else if self.nick.trim().is_empty() {
            (Field::Nick, "Choose a nickname: it is how the others will see you.")
        } else if self.nick.trim().contains(char::is_whitespace) {
            (Field::Nick, "A nickname is one word: leave out the spaces.")
        } else {
            return true;
        };
        self.error = Some(error.into());
        self.focus = Some(field);
        false
    }

    /// The server refused the login: say what to change, and focus it.
    pub fn refused(&mut self, code: RefuseCode, text: &str) {
        let nick = self.nick.trim().to_owned();
        let (field, error) = match code {
            RefuseCode::BadPassword => (
                Some(Field::Password),
                "Wrong server password. Ask the server's operator for it and type it in \"Server password\".".into(),
            ),
            RefuseCode::NickTaken => (
                Some(Field::Nick),
                format!("The nickname \"{nick}\" is taken by someone on the server right now. Choose another."),
            ),
            RefuseCode::NickInvalid => {
                (Some(Field::Nick), format!("\"{nick}\" cannot be used as a nickname ({text}). Choose another."))
            }
            RefuseCode::NickRegistered => (
                Some(Field::AccountPassword),
                format!(
                    "The nickname \"{nick}\" is registered. Type its account password in \"Account password\", \
                     or choose another nickname."
                ),
            ),
            RefuseCode::Banned => {
                (None, format!("You are banned from this server ({text}). Ask its operator if this is a mistake."))
            }
            RefuseCode::ServerFull | RefuseCode::TooManyAttempts => {
                (None, format!("The server turned you away for now ({text}). Try again in a minute."))
            }
        };
        self.error = Some(error);
        self.focus = field;
        self.busy = None;
    }

    /// The server did not answer the handshake.
    pub fn unreachable(&mut self) {
        let server = self.server.trim();
        self.error = Some(format!(
            "No answer from {server}. Check the address and port, that the server is running, \
             and that no firewall blocks UDP to it."
        ));
        self.focus = Some(Field::Server);
        self.busy = None;
    }

    pub fn failed(&mut self, error: &str) {
        self.error = Some(format!("Could not connect: {error}"));
        self.focus = Some(Field::Server);
        self.busy = None;
    }

    /// Draws the form; true when the user asked to connect.
    pub fn show(&mut self, ui: &mut egui::Ui, recent: &[String], can_cancel: bool) -> FormAction {
        let mut action = FormAction::None;
        ui.vertical_centered(|ui| {
            ui.add_space(24.0);
            ui.heading("Connect to a udpchat server");
            ui.add_space(12.0);
        });
        let width = 440.0_f32.min(ui.available_width() - 32.0);
        let margin = ((ui.available_width() - width) / 2.0).max(0.0);
        let focus = self.focus.take();
        let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
        let mut submitted = false;
        // One centred column, everything in it aligned on the left.
        ui.horizontal_top(|ui| {
            ui.add_space(margin);
            ui.vertical(|ui| {
                ui.set_width(width);
                egui::Grid::new("connect-form").num_columns(2).spacing([12.0, 8.0]).show(ui, |ui| {
                    let label = ui.label("Server address");
                    ui.horizontal(|ui| {
                        let r = ui.add(
                            egui::TextEdit::singleline(&mut self.server)
                                .desired_width(width - 230.0)
                                .hint_text("host:port"),
                        );
                        let r = r.labelled_by(label.id);
                        if focus == Some(Field::Server) {
                            r.request_focus();
                        }
                        submitted |= r.lost_focus() && enter;
                        if !recent.is_empty() || !self.discovered.is_empty() {
                            egui::ComboBox::from_id_salt("recent-servers").selected_text("Recent").width(70.0).show_ui(
                                ui,
                                |ui| {
                                    for s in recent {
                                        ui.selectable_value(&mut self.server, s.clone(), s);
                                    }
                                    if !self.discovered.is_empty() {
                                        ui.separator();
                                        ui.label(RichText::new("On this network").weak());
                                        for d in &self.discovered {
                                            let text = format!("{} ({})", d.name, d.address);
                                            ui.selectable_value(&mut self.server, d.address.clone(), text);
                                        }
                                    }
                                },
                            );
                        }
                    });
                    ui.end_row();
                    submitted |= field(ui, "Nickname", &mut self.nick, false, focus == Some(Field::Nick), enter);
                    ui.end_row();
                    submitted |=
                        field(ui, "Server password", &mut self.password, true, focus == Some(Field::Password), enter);
                    ui.end_row();
                    let focused = focus == Some(Field::AccountPassword);
                    submitted |= field(ui, "Account password", &mut self.account_password, true, focused, enter);
                    ui.end_row();
                    ui.label("");
                    ui.label(
                        RichText::new("Leave the passwords empty if the server and your nickname have none.")
                            .weak()
                            .small(),
                    );
                    ui.end_row();
                });
                ui.add_space(6.0);
                ui.checkbox(&mut self.remember_me, "Remember me (address and nickname)");
                ui.add_enabled_ui(self.remember_me, |ui| {
                    ui.checkbox(
                        &mut self.remember_passwords,
                        "Remember passwords too (unencrypted, only you can read them)",
                    );
                });
                ui.add_space(10.0);
                ui.horizontal(|ui| {
                    let connect = ui
                        .add_enabled(self.busy.is_none(), egui::Button::new("Connect").min_size([100.0, 28.0].into()));
                    if connect.clicked() {
                        submitted = true;
                    }
                    if can_cancel && ui.button("Cancel").clicked() {
                        action = FormAction::Cancel;
                    }
                    // Asked for, not automatic: a search broadcasts on every
                    // network the machine is on.
                    let searching = self.lan_status.as_deref() == Some(SEARCHING);
                    if ui.add_enabled(!searching, egui::Button::new("Find servers on this network")).clicked() {
                        action = FormAction::Discover;
                    }
                });
                if let Some(status) = &self.lan_status {
                    ui.label(RichText::new(status).weak());
                }
                if let Some(busy) = &self.busy {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label(busy);
                    });
                }
                if let Some(error) = &self.error {
                    ui.add_space(8.0);
                    egui::Frame::new().fill(ui.visuals().extreme_bg_color).inner_margin(8.0).corner_radius(4.0).show(
                        ui,
                        |ui| {
                            ui.label(RichText::new(error).color(error_colour(ui)));
                        },
                    );
                }
            });
        });
        if submitted && self.busy.is_none() && self.check() {
            self.error = None;
            action = FormAction::Connect;
        }
        action
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormAction {
    None,
    Connect,
    Cancel,
    /// Search the LAN for servers.
    Discover,
}

/// Shown while the LAN is searched.
pub const SEARCHING: &str = "Looking for udpchat servers on this network…";

impl Form {
    /// A LAN search came back: the servers go into the address field's
    /// drop-down (and the only one into the field itself).
    pub fn found(&mut self, result: Result<Vec<Discovered>, String>) {
        self.lan_status = Some(match result {
            Ok(found) if found.is_empty() => {
                "No udpchat server answered on this network (is one running, with LAN discovery on?).".to_owned()
            }
            Ok(found) => {
                if let [only] = found.as_slice() {
                    self.server.clone_from(&only.address);
                }
                let n = found.len();
                self.discovered = found;
                if n == 1 {
                    format!("Found {} on this network.", self.discovered[0].name)
                } else {
                    format!("Found {n} servers on this network: pick one under \"Recent\".")
                }
            }
            Err(e) => format!("Could not search this network: {e}"),
        });
    }
}

pub fn error_colour(ui: &egui::Ui) -> Color32 {
    if ui.visuals().dark_mode { Color32::from_rgb(255, 120, 110) } else { Color32::from_rgb(180, 20, 20) }
}

/// One labelled line of the form; true when Enter was pressed in it.
fn field(ui: &mut egui::Ui, name: &str, value: &mut String, password: bool, focus: bool, enter: bool) -> bool {
    let label = ui.label(name);
    let r =
        ui.add(egui::TextEdit::singleline(value).password(password).desired_width(f32::INFINITY)).labelled_by(label.id);
    if focus {
        r.request_focus();
    }
    r.lost_focus() && enter
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, address: &str) -> Discovered {
        Discovered { name: name.into(), address: address.into() }
    }

    #[test]
    fn a_lan_search_fills_the_address_drop_down_or_says_why_not() {
        let mut form = Form { server: "127.0.0.1:7667".into(), ..Form::default() };
        form.found(Ok(vec![server("GAS chatroom", "192.168.1.20:7667")]));
        assert_eq!(form.server, "192.168.1.20:7667", "the only one found goes into the field");
        assert_eq!(form.lan_status.as_deref(), Some("Found GAS chatroom on this network."));

        let mut form = Form { server: "127.0.0.1:7667".into(), ..Form::default() };
        form.found(Ok(vec![server("a", "10.0.0.1:7667"), server("b", "10.0.0.2:7667")]));
        assert_eq!(form.server, "127.0.0.1:7667", "several: the user picks");
        assert_eq!(form.discovered.len(), 2);
        assert!(form.lan_status.as_deref().is_some_and(|s| s.contains("Found 2 servers")));

        form.found(Ok(Vec::new()));
        assert!(form.lan_status.as_deref().is_some_and(|s| s.starts_with("No udpchat server answered")));
        form.found(Err("no network".into()));
        assert_eq!(form.lan_status.as_deref(), Some("Could not search this network: no network"));
    }
}
