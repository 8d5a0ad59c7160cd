//! The lines of a conversation as rows: the clock in local time, the
//! nickname in a colour of its own (the same for a nick in every run and
//! every room, from a hash of its case-folded form), the text; notices,
//! history and our own lines still waiting for the server each look
//! different. Only the rows in view are laid out (`ScrollArea::show_rows`),
//! so a room with 100,000 lines scrolls as smoothly as one with ten; a
//! row is one line of text, cut with "…" when too long for the window (the
//! whole line shows when the pointer rests on it).

use std::sync::OnceLock;

use egui::text::LayoutJob;
use egui::{Color32, FontId, TextFormat};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use udpchat_client::model::{Item, Kind, Status, mentions, nick_key};

/// `HH:MM` in the system time zone (`TZ`, else /etc/localtime).
pub fn clock(time_ms: u64) -> String {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    let zone = ZONE.get_or_init(TimeZone::system);
    let at = i64::try_from(time_ms).ok().and_then(|ms| Timestamp::from_millisecond(ms).ok());
    zone.to_datetime(at.unwrap_or(Timestamp::UNIX_EPOCH)).strftime("%H:%M").to_string()
}

/// A colour for `nick`, stable across runs (FNV-1a of the case-folded
/// nickname picks a hue), light or dark to suit the theme.
pub fn nick_colour(nick: &str, dark: bool) -> Color32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in nick_key(nick).bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let hue = (h % 360) as f32 / 360.0;
    let (s, v) = if dark { (0.55, 0.95) } else { (0.85, 0.62) };
    egui::ecolor::Hsva::new(hue, s, v, 1.0).into()
}

/// How one row reads, as laid out (the backgrounds of history and of
/// lines that mention us are drawn by [`show`]).
pub fn row(item: &Item, visuals: &egui::Visuals, font: &FontId) -> LayoutJob {
    let dark = visuals.dark_mode;
    let strong = visuals.strong_text_color();
    let weak = visuals.weak_text_color();
    let normal = visuals.text_color();
    let error = if dark { Color32::from_rgb(255, 120, 110) } else { Color32::from_rgb(180, 20, 20) };
    let notice = if dark { Color32::from_rgb(120, 180, 230) } else { Color32::from_rgb(30, 90, 150) };
    let mut job = LayoutJob::default();
    let fmt = |colour: Color32| TextFormat { font_id: font.clone(), color: colour, ..TextFormat::default() };
    job.append(&format!("{} ", clock(item.time_ms)), 0.0, fmt(weak));
    let own_waiting = item.status == Status::Pending;
    let text_colour = match item.kind {
        _ if own_waiting || item.history => weak,
        Kind::Error => error,
        Kind::Notice | Kind::Info => notice,
        _ => normal,
    };
    let nick = item.nick.as_deref().unwrap_or_default();
    let nick_fmt = || {
        let mut f = fmt(if own_waiting { weak } else { nick_colour(nick.split(" → ").next().unwrap_or(nick), dark) });
        f.font_id = font.clone();
        f
    };
    match item.kind {
        Kind::Chat | Kind::Operator if !nick.is_empty() => {
            let mark = if item.kind == Kind::Operator { "!" } else { "" };
            job.append(&format!("{nick}{mark}"), 0.0, nick_fmt());
            job.append("  ", 0.0, fmt(normal));
        }
        Kind::Action if !nick.is_empty() => {
            job.append("* ", 0.0, fmt(strong));
            job.append(nick, 0.0, nick_fmt());
            job.append(" ", 0.0, fmt(normal));
        }
        Kind::Private if !nick.is_empty() => {
            // The model writes `from → to`; the built-in fonts have no arrow.
            job.append(&format!("[{}]", nick.replace(" → ", " -> ")), 0.0, nick_fmt());
            job.append("  ", 0.0, fmt(normal));
        }
        Kind::Error => job.append("! ", 0.0, fmt(error)),
        _ => job.append("— ", 0.0, fmt(text_colour)),
    }
    let mut text_fmt = fmt(text_colour);
    if matches!(item.kind, Kind::Notice | Kind::Info | Kind::Action) || item.history {
        text_fmt.italics = true;
    }
    if item.status == Status::Refused {
        text_fmt.strikethrough = egui::Stroke::new(1.0, error);
    }
    job.append(&item.text, 0.0, text_fmt);
    let suffix = match item.status {
        Status::Pending => " (sending…)",
        Status::Unconfirmed => " (not confirmed)",
        Status::Refused => " (refused)",
        Status::Confirmed => "",
    };
    if !suffix.is_empty() {
        let colour = if item.status == Status::Pending { weak } else { error };
        job.append(suffix, 0.0, fmt(colour));
    }
    job.wrap = egui::text::TextWrapping::truncate_at_width(f32::INFINITY);
    job
}

/// Draws `lines` rows in the space left; returns the scroll output so the
/// caller can tell when the top was reached. `offset`: set the scroll
/// position (rows inserted above, kept in place).
pub fn show(
    ui: &mut egui::Ui,
    id: egui::Id,
    lines: &std::collections::VecDeque<Item>,
    me: &str,
    offset: Option<f32>,
) -> egui::scroll_area::ScrollAreaOutput<()> {
    let font = egui::TextStyle::Body.resolve(ui.style());
    // show_rows adds the item spacing itself.
    let text_height = ui.text_style_height(&egui::TextStyle::Body);
    let visuals = ui.visuals().clone();
    let history_bg = if visuals.dark_mode {
        Color32::from_rgba_unmultiplied(255, 255, 255, 8)
    } else {
        Color32::from_rgba_unmultiplied(0, 0, 0, 10)
    };
    let mention_bg = if visuals.dark_mode {
        Color32::from_rgba_unmultiplied(230, 170, 40, 28)
    } else {
        Color32::from_rgba_unmultiplied(230, 170, 40, 60)
    };
    // Stuck to the bottom, new lines scroll into view; an offset set on
    // purpose (a page key, a history page kept in place) must win.
    // Not animated: an animation still running toward an old target would
    // undo the offset set to keep the view in place when history arrives.
    let mut area = egui::ScrollArea::vertical()
        .id_salt(id)
        .auto_shrink([false, false])
        .animated(false)
        .stick_to_bottom(offset.is_none());
    if let Some(y) = offset {
        area = area.vertical_scroll_offset(y);
    }
    area.show_rows(ui, text_height, lines.len(), |ui, range| {
        for item in lines.range(range) {
            let mut job = row(item, &visuals, &font);
            job.wrap.max_width = ui.available_width();
            let bg = ui.painter().add(egui::Shape::Noop);
            let r = ui.add(egui::Label::new(job).truncate().selectable(true));
            let own =
                item.nick.as_deref().is_some_and(|n| nick_key(n.split(" → ").next().unwrap_or(n)) == nick_key(me));
            let fill = if item.is_said() && !own && mentions(&item.text, me) {
                Some(mention_bg)
            } else {
                item.history.then_some(history_bg)
            };
            if let Some(fill) = fill {
                let rect = egui::Rect::from_min_max(r.rect.min, egui::pos2(ui.max_rect().right(), r.rect.max.y));
                ui.painter().set(bg, egui::Shape::rect_filled(rect.expand(1.0), 2.0, fill));
            }
        }
    })
}

/// The height of one row, as `show` lays them out.
pub fn row_height(ui: &egui::Ui) -> f32 {
    ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_colours_are_stable_and_case_blind() {
        assert_eq!(nick_colour("Ana", true), nick_colour("ana", true));
        assert_ne!(nick_colour("ana", true), nick_colour("bob", true));
        assert_eq!(nick_colour("bob", false), nick_colour("bob", false));
    }
}
