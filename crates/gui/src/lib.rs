//! `udpchat-gui`, the desktop client: a connect form as the classic
//! Tkinter chats had, then a chat window over the shared client model
//! (`udpchat_client::model`), with eframe/egui on the glow backend. A
//! library so that the tests (crates/gui/tests) drive the same widgets
//! the binary shows; `main.rs` only opens the window.

pub mod app;
pub mod backend;
pub mod chat;
pub mod config;
pub mod form;
pub mod key_dialog;
pub mod rows;
pub mod server_view;

pub use app::{App, Paths};
