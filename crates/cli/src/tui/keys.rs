//! What each key does: editing the input line, history, completion and
//! scrolling act on the terminal's own state, switching conversations on
//! the model; Enter and Ctrl-C turn into an action for the client.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::{Action, State};

/// Applies one key press; returns what to ask the client for, if anything.
pub fn handle(state: &mut State, key: KeyEvent) -> Option<Action> {
    // The client has stopped: the screen says "press any key to exit".
    if state.stopped() {
        return Some(Action::Exit);
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    if state.paste.is_some() {
        // "paste N lines? y/n": nothing else is typed until it is answered.
        let yes = matches!(key.code, KeyCode::Char('y' | 'Y')) && !ctrl && !alt;
        state.confirm_paste(yes);
        return None;
    }
    if key.code != KeyCode::Tab {
        state.end_completion();
    }
    match key.code {
        KeyCode::Char('c') if ctrl => return Some(Action::Quit(String::new())),
        KeyCode::Char('n') if ctrl => state.model.next(),
        KeyCode::Char('p') if ctrl => state.model.prev(),
        KeyCode::Right if alt => state.model.next(),
        KeyCode::Left if alt => state.model.prev(),
        // Alt-1 … Alt-9 jump to a buffer, as in irssi (Alt-1: the server).
        KeyCode::Char(c @ '1'..='9') if alt => {
            state.model.goto(c as usize - '1' as usize);
        }
        KeyCode::Char('a') if ctrl => state.input.home(),
        KeyCode::Char('e') if ctrl => state.input.end(),
        KeyCode::Char('u') if ctrl => state.input.clear(),
        KeyCode::Char('w') if ctrl => state.input.delete_word(),
        KeyCode::Char('k') if ctrl => state.input.kill_to_end(),
        KeyCode::Char(_) if ctrl || alt => {}
        KeyCode::Char(c) => state.input.insert(c),
        KeyCode::Enter => return state.submit(),
        KeyCode::Tab => state.complete(),
        KeyCode::Esc => state.input.clear(),
        KeyCode::Backspace => state.input.backspace(),
        KeyCode::Delete => state.input.delete(),
        KeyCode::Left => state.input.left(),
        KeyCode::Right => state.input.right(),
        KeyCode::Home => state.input.home(),
        KeyCode::End => state.input.end(),
        KeyCode::PageUp => state.scroll_up(),
        KeyCode::PageDown => state.scroll_down(),
        KeyCode::Up => {
            let current = state.input.text().to_owned();
            if let Some(older) = state.history.up(&current) {
                let older = older.to_owned();
                state.input.set(&older);
            }
        }
        KeyCode::Down => {
            if let Some(newer) = state.history.down() {
                state.input.set(&newer);
            }
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(s: &mut State, code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
        handle(s, KeyEvent::new(code, modifiers))
    }

    fn type_str(s: &mut State, text: &str) {
        for c in text.chars() {
            press(s, KeyCode::Char(c), KeyModifiers::NONE);
        }
    }

    #[test]
    fn typing_editing_and_enter() {
        let mut s = State::new("ana", None);
        type_str(&mut s, "hi wörld");
        press(&mut s, KeyCode::Left, KeyModifiers::NONE);
        press(&mut s, KeyCode::Left, KeyModifiers::NONE);
        press(&mut s, KeyCode::Left, KeyModifiers::NONE);
        press(&mut s, KeyCode::Backspace, KeyModifiers::NONE);
        assert_eq!(s.input.text(), "hi wrld");
        press(&mut s, KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(s.input.text(), "");
        type_str(&mut s, "/list");
        assert!(matches!(press(&mut s, KeyCode::Enter, KeyModifiers::NONE), Some(Action::Send(_))));
        press(&mut s, KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(s.input.text(), "/list");
        press(&mut s, KeyCode::Down, KeyModifiers::NONE);
        assert_eq!(s.input.text(), "");
        assert_eq!(press(&mut s, KeyCode::Char('c'), KeyModifiers::CONTROL), Some(Action::Quit(String::new())));
    }

    #[test]
    fn any_key_exits_once_closed() {
        let mut s = State::new("ana", None);
        s.model.on_event(&udpchat_client::ClientEvent::Closed { reason: "gone".into() });
        assert_eq!(press(&mut s, KeyCode::Char('x'), KeyModifiers::NONE), Some(Action::Exit));
    }
}
