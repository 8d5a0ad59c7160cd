//! The server-key dialogs (docs/PROTOCOL.md §14.2, "Server authentication
//! and key pinning"): on first contact the key is shown (the same text the
//! server prints at start) and the user decides whether to trust it; when
//! the key differs from the one in the known-servers file (the same file
//! as the terminal client's, `udpchat_client::known_hosts`), a blocking
//! warning names both keys and the file, and nothing is sent to the
//! server unless the user explicitly replaces the key.

use std::path::Path;

use egui::RichText;
use udpchat_proto::PublicKey;

use crate::form::error_colour;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyQuestion {
    FirstContact { server: String, key: PublicKey },
    Changed { server: String, old: PublicKey, new: PublicKey },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAnswer {
    /// Still deciding.
    Open,
    /// Trust (or replace with) the presented key and connect.
    Trust,
    /// Do not connect.
    Cancel,
}

/// Draws the question as a modal window over everything else.
pub fn show(ctx: &egui::Context, question: &KeyQuestion, known_hosts: &Path) -> KeyAnswer {
    let mut answer = KeyAnswer::Open;
    let modal = egui::Modal::new(egui::Id::unique("server-key")).show(ctx, |ui| {
        ui.set_max_width(520.0);
        match question {
            KeyQuestion::FirstContact { server, key } => {
                ui.heading("New server");
                ui.add_space(6.0);
                ui.label(format!("This is your first visit to {server}. It identifies itself with the key"));
                key_line(ui, key);
                ui.label(
                    "Compare it with the \"server key:\" line the server printed when it started (ask its \
                     operator). If they match, trust it: udpchat will then warn you if it ever changes.",
                );
                ui.add_space(8.0);
                ui.horizontal(|ui| {
                    if ui.button("Trust this server").clicked() {
                        answer = KeyAnswer::Trust;
                    }
                    if ui.button("Cancel").clicked() {
                        answer = KeyAnswer::Cancel;
                    }
                });
            }
            KeyQuestion::Changed { server, old, new } => {
                ui.heading(RichText::new("Warning: the server's key has changed").color(error_colour(ui)));
                ui.add_space(6.0);
                ui.label(format!("{server} used to identify itself with the key"));
                key_line(ui, old);
                ui.label("but now presents");
                key_line(ui, new);
                ui.label(
                    "If the server was reinstalled or its key file replaced, this is expected. Otherwise someone \
                     may be intercepting the connection: do not connect.",
                );
                ui.label(format!("Trusted keys are kept in {}.", known_hosts.display()));
                ui.add_space(8.0);
                ui.horizontal(|ui| {
                    if ui.button("Don't connect").clicked() {
                        answer = KeyAnswer::Cancel;
                    }
                    if ui.button(RichText::new("Replace the key and connect").color(error_colour(ui))).clicked() {
                        answer = KeyAnswer::Trust;
                    }
                });
            }
        }
    });
    if answer == KeyAnswer::Open && modal.should_close() {
        answer = KeyAnswer::Cancel;
    }
    answer
}

fn key_line(ui: &mut egui::Ui, key: &PublicKey) {
    ui.add_space(2.0);
    ui.label(RichText::new(key.to_string()).monospace().strong());
    ui.add_space(2.0);
}
