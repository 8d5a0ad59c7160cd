//! `udpchat-gui`: opens the desktop client's window (eframe, glow), with
//! its size and position remembered between runs (eframe persistence) and
//! the settings loaded before the window opens, so the UI thread never
//! reads a file.

use std::sync::Arc;

use anyhow::Context;
use udpchat_gui::config::GuiConfig;
use udpchat_gui::{App, Paths};

struct Window(App);

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.ui(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.0.quit_all();
    }
}

fn main() -> anyhow::Result<()> {
    let paths = Paths::standard().context("cannot find a configuration directory: set HOME or XDG_CONFIG_HOME")?;
    let config = match GuiConfig::load(&paths.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("udpchat-gui: {e}; starting with empty settings");
            GuiConfig::default()
        }
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("udpchat")
            .with_app_id("udpchat-gui")
            .with_inner_size([960.0, 640.0])
            .with_min_inner_size([480.0, 320.0]),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "udpchat",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let app = App::new(paths, config, Arc::new(move || ctx.request_repaint()))?;
            Ok(Box::new(Window(app)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
