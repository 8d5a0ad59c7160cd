//! The desktop client's top level: which screen shows (the connect form,
//! a server-key question, the chat window), the connections (one
//! [`ServerView`] per server, several at once as in Halloy), and the
//! traffic with the network thread (`backend.rs`): each frame it takes
//! the replies waiting, feeds client events to the right model and sends
//! what the user asked for. The UI thread never blocks: requests are
//! queued with `try_send`, and what does not fit waits for the next frame.

use std::path::PathBuf;
use std::time::Duration;

use udpchat_client::chat::ServerMsg;
use udpchat_client::model::Command;
use udpchat_client::{ClientEvent, ClientOptions};

use crate::backend::{Backend, ConnId, Reply, Request};
use crate::config::GuiConfig;
use crate::form::{Form, FormAction};
use crate::key_dialog::{self, KeyAnswer, KeyQuestion};
use crate::server_view::ServerView;

/// Where the desktop client keeps its files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The settings (`config.rs`).
    pub config: PathBuf,
    /// Trusted server keys, shared with the terminal client.
    pub known_hosts: PathBuf,
}

impl Paths {
    /// The standard places (`$XDG_CONFIG_HOME/udpchat/…`).
    pub fn standard() -> Option<Self> {
        Some(Paths {
            config: GuiConfig::default_path()?,
            known_hosts: udpchat_client::known_hosts::KnownHosts::default_path()?,
        })
    }
}

/// Where the connection being set up from the form stands.
enum Stage {
    /// Asking the server for its key.
    Probing,
    /// Waiting for the user to trust the key, or to replace a changed one.
    Asking(KeyQuestion),
    /// The client runs; the view joins the others once logged in.
    LoggingIn(Box<ServerView>),
}

struct Attempt {
    conn: ConnId,
    options: ClientOptions,
    stage: Stage,
}

pub struct App {
    backend: Backend,
    paths: Paths,
    pub config: GuiConfig,
    pub form: Form,
    /// The form shows (at start, after a failed login, or to add a server).
    pub show_form: bool,
    attempt: Option<Attempt>,
    /// Logged-in servers, in the order they were added.
    pub servers: Vec<ServerView>,
    /// Which server's conversation is on screen.
    pub current: usize,
    next_conn: ConnId,
    /// A problem to show once (a file that could not be written).
    pub problem: Option<String>,
    pub chat: crate::chat::ChatUi,
}

impl App {
    /// `wake` is called from the network thread when something arrived.
    pub fn new(paths: Paths, config: GuiConfig, wake: crate::backend::Waker) -> std::io::Result<Self> {
        Ok(App {
            backend: Backend::start(wake)?,
            form: Form::from_config(&config),
            paths,
            config,
            show_form: true,
            attempt: None,
            servers: Vec::new(),
            current: 0,
            next_conn: 1,
            problem: None,
            chat: crate::chat::ChatUi::default(),
        })
    }

    /// The connection being logged in, if the form is waiting for one.
    pub fn connecting(&self) -> bool {
        self.attempt.is_some()
    }

    pub fn current_server(&self) -> Option<&ServerView> {
        self.servers.get(self.current)
    }

    pub fn current_server_mut(&mut self) -> Option<&mut ServerView> {
        self.servers.get_mut(self.current)
    }

    /// Draws one frame (eframe's `App::ui`, and the tests' harness).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.take_replies(ui.ctx());
        crate::chat::quit_shortcut(ui.ctx());
        if self.show_form || self.servers.is_empty() {
            self.form_screen(ui);
        } else {
            crate::chat::show(self, ui);
        }
        self.key_question(ui.ctx());
        self.flush_outgoing(ui.ctx());
        if let Some(problem) = self.problem.clone() {
            egui::Modal::new(egui::Id::unique("problem")).show(ui.ctx(), |ui| {
                ui.label(problem);
                if ui.button("OK").clicked() {
                    self.problem = None;
                }
            });
        }
    }

    fn form_screen(&mut self, ui: &mut egui::Ui) {
        let can_cancel = !self.servers.is_empty() && self.attempt.is_none();
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| match self.form.show(ui, &self.config.servers, can_cancel) {
                FormAction::Connect => self.connect(),
                FormAction::Cancel => self.show_form = false,
                FormAction::Discover => {
                    if self.backend.send(Request::Discover).is_ok() {
                        self.form.lan_status = Some(crate::form::SEARCHING.to_owned());
                    }
                }
                FormAction::None => {}
            });
        });
    }

    /// Starts a connection from the form: first the server's key.
    fn connect(&mut self) {
        let server = self.form.server.trim().to_owned();
        let mut options = ClientOptions::new(&server, self.form.nick.trim());
        options.password = self.form.password.clone();
        options.account_password = self.form.account_password.clone();
        options.known_hosts = Some(self.paths.known_hosts.clone());
        options.reconnect = true;
        let conn = self.next_conn;
        self.next_conn += 1;
        let probe = Request::Probe { conn, server: server.clone(), known_hosts: self.paths.known_hosts.clone() };
        if self.backend.send(probe).is_err() {
            self.form.failed("the network thread is busy or gone; try again");
            return;
        }
        self.form.busy = Some(format!("contacting {server}…"));
        self.attempt = Some(Attempt { conn, options, stage: Stage::Probing });
        self.form.remember(&mut self.config);
        let save = Request::SaveConfig { config: Box::new(self.config.clone()), path: self.paths.config.clone() };
        // Not saving the settings is not worth refusing to connect.
        let _ = self.backend.send(save);
    }

    /// The key dialog, while one is open.
    fn key_question(&mut self, ctx: &egui::Context) {
        let Some(Attempt { stage: Stage::Asking(q), .. }) = &self.attempt else { return };
        match key_dialog::show(ctx, q, &self.paths.known_hosts) {
            KeyAnswer::Open => {}
            KeyAnswer::Cancel => {
                self.attempt = None;
                self.form.busy = None;
                self.form.error = Some("Not connected: the server's key was not trusted.".into());
            }
            KeyAnswer::Trust => {
                let (server, key) = match q {
                    KeyQuestion::FirstContact { server, key } | KeyQuestion::Changed { server, new: key, .. } => {
                        (server.clone(), *key)
                    }
                };
                let known_hosts = self.paths.known_hosts.clone();
                let _ = self.backend.send(Request::Trust { server, key, known_hosts });
                self.start_client(key);
            }
        }
    }

    /// Starts the client for the attempt, requiring `key`.
    fn start_client(&mut self, key: udpchat_proto::PublicKey) {
        let Some(attempt) = self.attempt.as_mut() else { return };
        attempt.options.server_key = Some(key);
        let view = ServerView::new(attempt.conn, &attempt.options.server, &attempt.options.nick);
        let req = Request::Connect { conn: attempt.conn, options: Box::new(attempt.options.clone()) };
        if self.backend.send(req).is_err() {
            self.attempt = None;
            self.form.failed("the network thread is busy or gone; try again");
            return;
        }
        attempt.stage = Stage::LoggingIn(Box::new(view));
        self.form.busy = Some("logging in…".into());
    }

    /// Takes every reply waiting (bounded by the reply queue). A new
    /// mention or private message while the window is not focused asks
    /// for the user's attention (the task bar entry flashes), as HexChat
    /// and Element do.
    fn take_replies(&mut self, ctx: &egui::Context) {
        let mentions =
            |app: &App| -> usize { app.servers.iter().flat_map(|v| v.model.conversations()).map(|c| c.mentions).sum() };
        let before = mentions(self);
        while let Some(reply) = self.backend.poll() {
            self.on_reply(reply);
        }
        let unfocused = ctx.input(|i| i.viewport().focused == Some(false));
        if mentions(self) > before && unfocused {
            ctx.send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(egui::UserAttentionType::Informational));
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Key { conn, key, known } => {
                let Some(attempt) = self.attempt.as_mut().filter(|a| a.conn == conn) else { return };
                let server = attempt.options.server.clone();
                match known {
                    Some(k) if k == key => self.start_client(key),
                    Some(old) => attempt.stage = Stage::Asking(KeyQuestion::Changed { server, old, new: key }),
                    None => attempt.stage = Stage::Asking(KeyQuestion::FirstContact { server, key }),
                }
            }
            Reply::ProbeFailed { conn, error, unreachable } => {
                if self.attempt.as_ref().is_some_and(|a| a.conn == conn) {
                    self.attempt = None;
                    if unreachable { self.form.unreachable() } else { self.form.failed(&error) }
                }
            }
            Reply::ConnectFailed { conn, error } => {
                if self.attempt.as_ref().is_some_and(|a| a.conn == conn) {
                    self.attempt = None;
                    self.form.failed(&error);
                }
            }
            Reply::Event { conn, event } => self.on_event(conn, &event),
            Reply::Sending { conn, id, input } => {
                if let Some(v) = self.view_mut(conn) {
                    v.model.sending(id, &input);
                }
            }
            Reply::Problem(text) => self.problem = Some(text),
            Reply::Discovered(found) => self.form.found(found),
        }
    }

    fn view_mut(&mut self, conn: ConnId) -> Option<&mut ServerView> {
        if let Some(Attempt { stage: Stage::LoggingIn(v), .. }) = self.attempt.as_mut()
            && v.conn == conn
        {
            return Some(v);
        }
        self.servers.iter_mut().find(|v| v.conn == conn)
    }

    fn on_event(&mut self, conn: ConnId, event: &ClientEvent) {
        let logging_in = matches!(&self.attempt, Some(a) if a.conn == conn);
        let Some(view) = self.view_mut(conn) else { return };
        view.model.on_event(event);
        if !logging_in {
            if view.quitting && matches!(event, ClientEvent::Closed { .. }) {
                self.servers.retain(|v| v.conn != conn);
                self.current = self.current.min(self.servers.len().saturating_sub(1));
            }
            return;
        }
        match event {
            ClientEvent::Server(ServerMsg::Welcome { .. }) => {
                let Some(Attempt { stage: Stage::LoggingIn(view), .. }) = self.attempt.take() else { return };
                self.servers.push(*view);
                self.current = self.servers.len() - 1;
                self.show_form = false;
                self.form.busy = None;
                self.form.error = None;
                self.chat.focus_input = true;
            }
            ClientEvent::Server(ServerMsg::LoginRefused { code, text }) => {
                self.form.refused(*code, text);
                self.attempt = None;
                // A new attempt starts from the form; this client leaves.
                let _ = self.backend.send(Request::Quit { conn, reason: String::new(), within: Duration::ZERO });
            }
            ClientEvent::Closed { reason } => {
                self.attempt = None;
                self.form.failed(reason);
            }
            ClientEvent::Disconnected { reason, .. } => {
                // Before the first login a lost session is not retried.
                self.attempt = None;
                self.form.failed(reason);
                let _ = self.backend.send(Request::Quit { conn, reason: String::new(), within: Duration::ZERO });
            }
            _ => {}
        }
    }

    /// Sends what the views queued, as far as the request queue takes it.
    fn flush_outgoing(&mut self, ctx: &egui::Context) {
        let mut removed = Vec::new();
        for v in &mut self.servers {
            while let Some(cmd) = v.outgoing.pop_front() {
                let req = match cmd.clone() {
                    Command::Send(input) => Request::Input { conn: v.conn, input },
                    Command::Login(nick) => Request::Login { conn: v.conn, nick },
                    Command::Quit(reason) => {
                        v.quitting = true;
                        Request::Quit { conn: v.conn, reason, within: udpchat_client::session::QUIT_WAIT }
                    }
                    Command::Exit => {
                        removed.push(v.conn);
                        continue;
                    }
                };
                if self.backend.send(req).is_err() {
                    // Full: the rest goes on a later frame, in order.
                    v.outgoing.push_front(cmd);
                    ctx.request_repaint_after(Duration::from_millis(20));
                    break;
                }
            }
        }
        if !removed.is_empty() {
            self.servers.retain(|v| !removed.contains(&v.conn));
            self.current = self.current.min(self.servers.len().saturating_sub(1));
        }
    }

    /// Leaves every server at once (the window is closing).
    pub fn quit_all(&mut self) {
        for v in &self.servers {
            let _ = self.backend.send(Request::Quit { conn: v.conn, reason: String::new(), within: Duration::ZERO });
        }
    }
}
