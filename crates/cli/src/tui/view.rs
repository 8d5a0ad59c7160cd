//! Drawing the client model (and the terminal's own state) with ratatui,
//! irssi-style: a title bar with the conversation and its topic, the chat
//! pane, the conversation and member lists on the right, a status bar and
//! the input line. Times are shown in local time (`display::clock`). Chat lines are wrapped here (at word
//! boundaries, continuation rows indented past the timestamp) so that
//! scrolling counts screen rows exactly.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use udpchat_client::model::{Conn, Item, Kind, Status, mentions, nick_key};

use super::state::State;
use crate::display;

/// Width of the room and member lists.
const SIDE_WIDTH: u16 = 24;
/// Below this width the side lists are left out.
const SIDE_MIN_TOTAL: u16 = 60;
/// Continuation rows start under the text, past `HH:MM:SS `.
const INDENT: usize = 9;

/// Nickname colours: readable on dark and light backgrounds, and none of
/// them magenta (private messages) so a nick never looks like one.
const NICK_COLOURS: [Color; 12] = [
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightCyan,
    Color::Indexed(208),
    Color::Indexed(141),
];

/// The same nickname gets the same colour in every run and on every
/// screen: FNV-1a of the case-folded name, not std's randomised hasher.
pub fn nick_colour(nick: &str) -> Color {
    let mut h: u32 = 0x811c_9dc5;
    for b in nick_key(nick).bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    NICK_COLOURS[h as usize % NICK_COLOURS.len()]
}

fn bar() -> Style {
    Style::new().bg(Color::Blue).fg(Color::White)
}

pub fn draw(f: &mut Frame, s: &mut State) {
    let [title, body, status, input] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1), Constraint::Length(1)])
            .areas(f.area());
    let side_width = if body.width >= SIDE_MIN_TOTAL { SIDE_WIDTH } else { 0 };
    let [chat, side] = Layout::horizontal([Constraint::Min(1), Constraint::Length(side_width)]).areas(body);
    s.chat_rows = usize::from(chat.height);
    draw_title(f, title, s);
    draw_chat(f, chat, s);
    if side_width > 0 {
        draw_side(f, side, s);
    }
    let scrolled = *s.scroll() > 0;
    draw_status(f, status, s, scrolled);
    draw_input(f, input, s);
}

fn draw_title(f: &mut Frame, area: Rect, s: &State) {
    let b = s.model.current();
    let mut text = format!(" udpchat  {}", b.name());
    if !b.topic.is_empty() {
        text.push_str(" — ");
        text.push_str(&b.topic);
    }
    f.render_widget(Paragraph::new(sanitize(&text)).style(bar()), area);
}

fn draw_status(f: &mut Frame, area: Rect, s: &State, scrolled: bool) {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let clock = display::clock(now);
    let conn = s.model.conn();
    let conn_style = match conn {
        Conn::Connected { .. } => bar(),
        Conn::Disconnected | Conn::Closed | Conn::NickRefused => bar().fg(Color::LightRed).add_modifier(Modifier::BOLD),
        _ => bar().fg(Color::LightYellow),
    };
    let mut spans = vec![
        Span::raw(format!(" [{}] [", &clock[..5])),
        Span::styled(s.model.nick().to_owned(), bar().add_modifier(Modifier::BOLD)),
        Span::raw(format!("] [{}] [", s.model.current().name())),
        Span::styled(conn.describe(), conn_style),
        Span::raw("]"),
    ];
    // Leaving waits for our lines: say how many are left.
    let pending = s.model.pending_lines();
    if s.quitting && pending > 0 {
        spans.push(Span::styled(format!(" [leaving: {pending} line(s) to confirm; Ctrl-C: now]"), conn_style));
    } else if pending > 0 {
        spans.push(Span::raw(format!(" [pending: {pending}]")));
    }
    let active: Vec<(usize, bool)> = s
        .model
        .conversations()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.unread > 0)
        .map(|(i, c)| (i + 1, c.mentions > 0))
        .collect();
    if !active.is_empty() {
        spans.push(Span::raw(" [act: "));
        for (n, (i, mentioned)) in active.iter().enumerate() {
            if n > 0 {
                spans.push(Span::raw(","));
            }
            let style = if *mentioned { bar().fg(Color::LightMagenta).add_modifier(Modifier::BOLD) } else { bar() };
            spans.push(Span::styled(i.to_string(), style));
        }
        spans.push(Span::raw("]"));
    }
    if scrolled {
        spans.push(Span::styled(" -- more below (PgDn) --", bar().fg(Color::LightYellow).add_modifier(Modifier::BOLD)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)).style(bar()), area);
}

fn draw_chat(f: &mut Frame, area: Rect, s: &mut State) {
    let (width, height) = (usize::from(area.width), usize::from(area.height));
    let me = s.model.nick().to_owned();
    let mut scroll = *s.scroll();
    let b = s.model.current();
    let here = b.room();
    // Wrap from the newest line back, only as far as the screen needs.
    let want = height + scroll;
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut all = true;
    for it in b.lines.iter().rev() {
        rows.extend(wrap(&item_spans(it, here, &me), width, INDENT).into_iter().rev());
        if rows.len() >= want {
            all = false;
            break;
        }
    }
    if all {
        // Scrolled past the oldest line: stop there, so PgDn acts at once.
        scroll = scroll.min(rows.len().saturating_sub(height));
        *s.scroll() = scroll;
    }
    let mut shown: Vec<Line> = rows.into_iter().skip(scroll).take(height).collect();
    shown.reverse();
    f.render_widget(Paragraph::new(shown), area);
}

fn item_spans(it: &Item, here: Option<&str>, me: &str) -> Vec<Span<'static>> {
    let grey = Style::new().fg(Color::DarkGray);
    let mut v = vec![Span::styled(format!("{} ", display::clock(it.time_ms)), grey)];
    if it.history {
        v.push(Span::styled("(history) ", grey.add_modifier(Modifier::ITALIC)));
    }
    if let Some(room) = it.room.as_deref().filter(|r| Some(*r) != here) {
        v.push(Span::styled(format!("#{room} "), Style::new().fg(Color::Gray)));
    }
    let text = it.text.clone();
    match (it.kind, &it.nick) {
        (Kind::Chat, Some(n)) => {
            let mut style = Style::new();
            if n != me && mentions(&text, me) {
                style = style.add_modifier(Modifier::BOLD);
            }
            v.push(Span::raw("<"));
            v.push(Span::styled(n.clone(), Style::new().fg(nick_colour(n)).add_modifier(Modifier::BOLD)));
            v.push(Span::raw("> "));
            v.push(Span::styled(text, style));
        }
        (Kind::Action, Some(n)) => v.push(Span::styled(
            format!("* {n} {text}"),
            Style::new().fg(nick_colour(n)).add_modifier(Modifier::ITALIC),
        )),
        (Kind::Operator, Some(n)) => {
            v.push(Span::styled(format!("<{n}!> {text}"), Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)));
        }
        (Kind::Private, Some(n)) => v.push(Span::styled(format!("[{n}] {text}"), Style::new().fg(Color::Magenta))),
        (Kind::Error, _) => v.push(Span::styled(format!("!! {text}"), Style::new().fg(Color::Red))),
        (Kind::Info, _) => v.push(Span::styled(format!("-- {text}"), Style::new().fg(Color::Cyan))),
        _ => v.push(Span::styled(format!("-- {text}"), grey)),
    }
    // Our own line: grey until the server has it; marked if it may not.
    match it.status {
        Status::Confirmed => {}
        Status::Pending => {
            for span in v.iter_mut().skip(1) {
                span.style = span.style.fg(Color::DarkGray);
            }
        }
        Status::Unconfirmed => v.push(Span::styled(" (not confirmed)", Style::new().fg(Color::Red))),
        Status::Refused => v.push(Span::styled(" (refused)", Style::new().fg(Color::Red))),
    }
    v
}

fn char_width(c: char) -> usize {
    #[cfg(test)]
    WIDTHS.with(|w| w.set(w.get() + 1));
    let mut buf = [0u8; 4];
    Span::raw(&*c.encode_utf8(&mut buf)).width()
}

#[cfg(test)]
thread_local! {
    /// Characters measured, to check that the work per key press follows
    /// what is on screen, not the length of the line or the scrollback.
    static WIDTHS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Where the input line starts on screen so that the cursor shows: walks
/// back from the cursor, so the cost is the width shown, not the line's
/// length (a 4,000-character line stays quick to edit).
fn input_start(text: &str, cursor: usize, room: usize) -> usize {
    let (mut width, mut start) = (0, cursor);
    for (i, c) in text[..cursor].char_indices().rev() {
        width += char_width(c);
        if width > room {
            break;
        }
        start = i;
    }
    start
}

/// Where the part of the input line that fits in `room` columns ends.
fn input_end(text: &str, start: usize, room: usize) -> usize {
    let mut width = 0;
    for (i, c) in text[start..].char_indices() {
        width += char_width(c);
        if width > room {
            return start + i;
        }
    }
    text.len()
}

/// Control characters would move the terminal's cursor; show a space.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Splits styled text into rows of at most `width` columns, breaking after
/// the last space that fits when there is one; rows after the first start
/// with `indent` spaces.
pub fn wrap(spans: &[Span], width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = if width >= indent + 10 { indent } else { 0 };
    let pad: Vec<(char, Style)> = vec![(' ', Style::new()); indent];
    let mut rows: Vec<Vec<(char, Style)>> = vec![Vec::new()];
    let mut used = 0;
    for span in spans {
        for c in span.content.chars() {
            let c = if c.is_control() { ' ' } else { c };
            let w = char_width(c);
            let Some(row) = rows.last_mut() else { break };
            if used + w > width && !row.is_empty() {
                let mut next = pad.clone();
                if c != ' ' {
                    // Carry the unfinished word over, if a space can break it.
                    if let Some(p) = row.iter().rposition(|(ch, _)| *ch == ' ').filter(|&p| p > indent) {
                        next.extend(row.split_off(p + 1));
                        row.pop();
                    }
                }
                used = next.iter().map(|(ch, _)| char_width(*ch)).sum();
                rows.push(next);
                if c == ' ' {
                    continue;
                }
            }
            if let Some(row) = rows.last_mut() {
                row.push((c, span.style));
                used += w;
            }
        }
    }
    rows.into_iter()
        .map(|row| {
            let mut spans: Vec<Span<'static>> = Vec::new();
            let mut text = String::new();
            let mut style = None;
            for (c, st) in row {
                if style.is_some_and(|s| s != st) {
                    spans.push(Span::styled(std::mem::take(&mut text), style.unwrap_or_default()));
                }
                style = Some(st);
                text.push(c);
            }
            if !text.is_empty() {
                spans.push(Span::styled(text, style.unwrap_or_default()));
            }
            Line::from(spans)
        })
        .collect()
}

fn draw_side(f: &mut Frame, area: Rect, s: &State) {
    let conversations = s.model.conversations();
    let rooms_height = (conversations.len() as u16 + 2).min(area.height / 2).max(3);
    let [rooms_area, members_area] =
        Layout::vertical([Constraint::Length(rooms_height), Constraint::Min(0)]).areas(area);
    let rooms: Vec<Line> = conversations
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut text = format!("{} {}", i + 1, b.name());
            if b.unread > 0 {
                text.push_str(&format!(" ({})", b.unread));
            }
            let style = if i == s.model.focused() {
                Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
            } else if b.mentions > 0 {
                Style::new().fg(Color::LightMagenta).add_modifier(Modifier::BOLD)
            } else if b.unread > 0 {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            Line::styled(sanitize(&text), style)
        })
        .collect();
    f.render_widget(Paragraph::new(rooms).block(Block::bordered().title(" rooms ")), rooms_area);

    let b = s.model.current();
    let inner = usize::from(members_area.height.saturating_sub(2));
    let me = nick_key(s.model.nick());
    let mut members: Vec<Line> = b
        .members
        .iter()
        .map(|m| {
            let mut style = Style::new().fg(nick_colour(m));
            if nick_key(m) == me {
                style = style.add_modifier(Modifier::BOLD);
            }
            Line::styled(sanitize(m), style)
        })
        .collect();
    if members.len() > inner && inner > 0 {
        let more = members.len() - (inner - 1);
        members.truncate(inner - 1);
        members.push(Line::styled(format!("… {more} more"), Style::new().fg(Color::DarkGray)));
    }
    let title = if b.room().is_some() { format!(" members ({}) ", b.members.len()) } else { " members ".into() };
    f.render_widget(Paragraph::new(members).block(Block::bordered().title(title)), members_area);
}

fn draw_input(f: &mut Frame, area: Rect, s: &State) {
    if s.stopped() {
        let style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
        f.render_widget(Paragraph::new(Line::styled("press any key to exit", style)), area);
        return;
    }
    let prompt = if let Some(lines) = &s.paste {
        format!("[paste {} lines? y/n] ", lines.len())
    } else if s.model.awaiting_nick() {
        "[nickname?] ".to_owned()
    } else {
        format!("[{}] ", s.model.current().name())
    };
    let prompt = sanitize(&prompt);
    let prompt_width = Span::raw(prompt.as_str()).width();
    let text = s.input.text();
    let cursor = s.input.cursor();
    // Scroll the line sideways so the cursor stays on screen.
    let room = usize::from(area.width).saturating_sub(prompt_width + 1).max(1);
    let start = input_start(text, cursor, room);
    let end = input_end(text, start, room + 1);
    let line =
        Line::from(vec![Span::styled(prompt, Style::new().fg(Color::Cyan)), Span::raw(text[start..end].to_owned())]);
    f.render_widget(Paragraph::new(line), area);
    let x = prompt_width + text[start..cursor].chars().map(char_width).sum::<usize>();
    let x = area.x.saturating_add(u16::try_from(x).unwrap_or(u16::MAX)).min(area.right().saturating_sub(1));
    f.set_cursor_position(Position::new(x, area.y));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    #[test]
    fn editing_a_long_line_measures_only_what_shows() {
        let text = "word ".repeat(800);
        for cursor in [text.len(), text.len() / 2, 10] {
            WIDTHS.with(|w| w.set(0));
            let start = input_start(&text, cursor, 80);
            let end = input_end(&text, start, 81);
            let measured = WIDTHS.with(std::cell::Cell::get);
            assert!(measured <= 2 * 82 + 2, "{measured} characters measured for an 80-column input");
            assert!(text[start..cursor].chars().count() <= 80 && end - start <= 81);
            assert!(cursor - start == 80 || start == 0);
        }
    }

    #[test]
    fn wraps_at_words_with_indent() {
        let spans = [Span::raw("12:00:00 "), Span::styled("<bob> hello there world", Style::new().fg(Color::Red))];
        let rows = wrap(&spans, 22, 9);
        assert_eq!(texts(&rows), ["12:00:00 <bob> hello", "         there world"]);
        assert_eq!(rows[0].spans.len(), 2, "styles are kept apart");
        // No space to break at: a hard break.
        let rows = wrap(&[Span::raw("abcdefghij")], 4, 9);
        assert_eq!(texts(&rows), ["abcd", "efgh", "ij"]);
        // Wide characters count two columns.
        let rows = wrap(&[Span::raw("日本語日本語")], 5, 0);
        assert_eq!(texts(&rows), ["日本", "語日", "本語"]);
        assert_eq!(wrap(&[Span::raw("a\u{7}b")], 10, 0).len(), 1);
    }

    #[test]
    fn draws_every_part() {
        use ratatui::Terminal;
        use ratatui::backend::TestBackend;
        use udpchat_client::ClientEvent;
        use udpchat_client::chat::ServerMsg;

        let mut s = State::new("ana", None);
        let welcome =
            ServerMsg::Welcome { nick: "ana".into(), server_name: "t".into(), motd: String::new(), operator: false };
        s.model.on_event(&ClientEvent::Server(welcome));
        s.model.on_event(&ClientEvent::Rtt(std::time::Duration::from_micros(700)));
        let members = vec!["ana".into(), "bob".into()];
        s.model.on_event(&ClientEvent::Server(ServerMsg::Joined {
            room: "lobby".into(),
            topic: "tea".into(),
            members,
            head: 0,
        }));
        for i in 0..40 {
            s.model.note(Kind::Notice, &format!("line {i}"));
        }
        s.input.insert_str("héllo");
        let mut term = Terminal::new(TestBackend::new(80, 12)).expect("test terminal");
        term.draw(|f| draw(f, &mut s)).expect("draw");
        let screen: Vec<String> =
            term.backend().buffer().content.chunks(80).map(|row| row.iter().map(|c| c.symbol()).collect()).collect();
        let all = screen.join("\n");
        assert!(screen[0].contains("#lobby — tea"), "{all}");
        assert!(all.contains("│2 #lobby") && all.contains("│bob"), "{all}");
        assert!(screen[10].contains("[ana] [#lobby] [connected, rtt 0.7 ms]"), "{all}");
        assert!(screen[9].contains("line 39"), "{all}");
        assert_eq!(screen[11].trim_end(), "[#lobby] héllo");
        assert_eq!(s.chat_rows, 9);
        // PgUp, past the top: the view stops at the oldest line.
        for _ in 0..20 {
            s.scroll_up();
        }
        term.draw(|f| draw(f, &mut s)).expect("draw");
        let top: String = term.backend().buffer().content[80..160].iter().map(|c| c.symbol()).collect();
        assert!(top.contains("logged in to t as ana"), "{top}");
        s.scroll_down();
        assert!(*s.scroll() > 0);
    }

    #[test]
    fn nick_colours_are_stable() {
        assert_eq!(nick_colour("Bob"), nick_colour("bob"));
        let distinct: std::collections::BTreeSet<String> =
            ["ana", "bob", "carol", "dave", "eve", "frank"].iter().map(|n| format!("{:?}", nick_colour(n))).collect();
        assert!(distinct.len() > 2);
    }
}
