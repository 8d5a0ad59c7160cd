//! The real `udpchat-gui` binary as a person sees it: on a virtual X
//! display (Xvfb), with its settings and the server's key already saved
//! (as after an earlier visit), it is started, Enter is pressed in the
//! connect form (xdotool), a line is typed and sent, another client sees
//! it, the screen is photographed (ImageMagick's `import`), and Ctrl+Q
//! closes it, saving the window's geometry. With
//! `UDPCHAT_GUI_SCREENSHOT=PATH` the picture is also copied there (that is
//! how docs/images/gui.png was made). Without Xvfb, xdotool or import the
//! test is skipped with a message, except under CI (`CI` set), where it
//! fails: .ci/run installs them.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Peer, ServerThread, WAIT};
use udpchat_client::chat::LOBBY;

const BIN: &str = env!("CARGO_BIN_EXE_udpchat-gui");
const SIZE: (u32, u32) = (960, 640);

fn installed(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Kills what the test started, however it ends.
struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command on `display`, bounded in time; its stdout.
fn run(display: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(args[0]).args(&args[1..]).env("DISPLAY", display).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_binary_logs_in_under_xvfb_and_is_photographed() {
    let missing: Vec<&str> = [("Xvfb", "-help"), ("xdotool", "version"), ("import", "-version")]
        .into_iter()
        .filter(|(c, a)| !installed(c, a))
        .map(|(c, _)| c)
        .collect();
    if !missing.is_empty() {
        assert!(!in_ci(), "{missing:?} missing: install xvfb xdotool imagemagick libgl1-mesa-dri (.ci/run does)");
        eprintln!("skipped: {missing:?} not installed (apt-get install xvfb xdotool imagemagick libgl1-mesa-dri)");
        return;
    }
    let server = ServerThread::start(None);
    let mut bob = Peer::join(&server, "bob", None);
    let carol = Peer::join(&server, "carol", None);
    bob.rt.block_on(bob.client.input(udpchat_client::Input::Topic {
        room: LOBBY.into(),
        topic: Some("Welcome! Be kind, and say hi".into()),
    }));
    bob.rt.block_on(bob.client.input(udpchat_client::Input::Join("rust".into())));
    bob.say(LOBBY, "morning all");
    carol.say(LOBBY, "hi bob! did the build finish?");
    bob.say(LOBBY, "yes, all green");

    // As after an earlier visit: the server remembered and its key trusted.
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join(".config/udpchat");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("gui.toml"),
        format!("servers = [\"{}\"]\nremember_me = true\nnick = \"ana\"\n", server.address()),
    )
    .unwrap();
    std::fs::write(config_dir.join("known_servers"), format!("{} {}\n", server.address(), server.key)).unwrap();

    let mut xvfb = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", &format!("{}x{}x24", SIZE.0, SIZE.1), "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb starts");
    let mut number = String::new();
    BufReader::new(xvfb.stdout.take().unwrap()).read_line(&mut number).unwrap();
    let display = format!(":{}", number.trim());
    let mut kill = Kill(vec![xvfb]);
    // Xvfb names its display once it listens; under load the first
    // clients were still turned away at times, so wait until one gets in.
    let deadline = Instant::now() + WAIT;
    while run(&display, &["xdotool", "getdisplaygeometry"]).is_none() {
        assert!(Instant::now() < deadline, "Xvfb on {display} never took a client");
        std::thread::sleep(Duration::from_millis(100));
    }
    let gui = Command::new(BIN)
        .env("DISPLAY", &display)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_DATA_HOME", home.path().join(".local/share"))
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("udpchat-gui starts");
    kill.0.push(gui);

    let deadline = Instant::now() + WAIT;
    let window = loop {
        if let Some(w) =
            run(&display, &["xdotool", "search", "--name", "udpchat"]).and_then(|o| o.lines().next().map(str::to_owned))
        {
            break w;
        }
        assert!(Instant::now() < deadline, "no udpchat window appeared on {display}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    run(&display, &["xdotool", "windowfocus", "--sync", &window]).expect("focus the window");
    // The form opens with the remembered server and nickname, the
    // address field focused: Enter connects.
    run(&display, &["xdotool", "key", "--window", &window, "Return"]).expect("press Enter");
    bob.saw_join("ana", LOBBY);
    // The window shows the chat (and focuses its input line) on the frame
    // after the welcome; under load that can take a moment.
    std::thread::sleep(Duration::from_millis(1000));
    // Join a second room, and go back to the lobby with Ctrl+P.
    run(&display, &["xdotool", "type", "--delay", "20", "/join rust"]).expect("type");
    run(&display, &["xdotool", "key", "Return"]).expect("press Enter");
    bob.saw_join("ana", "rust");
    std::thread::sleep(Duration::from_millis(200));
    run(&display, &["xdotool", "key", "ctrl+p"]).expect("press Ctrl+P");
    carol.say(LOBBY, "ana: welcome to the desktop client");
    run(&display, &["xdotool", "type", "--delay", "20", "hello from the desktop client"]).expect("type");
    run(&display, &["xdotool", "key", "Return"]).expect("press Enter");
    let got = bob.lines_from("ana", |t| !t.is_empty());
    assert_eq!(got, ["hello from the desktop client"]);
    bob.say(LOBBY, "welcome ana!");
    // Unread in the other room, with a mention.
    bob.say("rust", "ana: the release notes are up");
    bob.say("rust", "and the changelog");
    std::thread::sleep(Duration::from_millis(800));

    let shot = home.path().join("gui.png");
    run(&display, &["import", "-window", "root", shot.to_str().unwrap()]).expect("import takes a screenshot");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "the screenshot is {size} bytes: an empty screen?");
    if let Ok(to) = std::env::var("UDPCHAT_GUI_SCREENSHOT") {
        std::fs::copy(&shot, &to).expect("copy the screenshot");
    }

    // Ctrl+Q closes the window the way its close button does: the client
    // says goodbye, and eframe writes the window's size and position.
    run(&display, &["xdotool", "key", "ctrl+q"]).expect("press Ctrl+Q");
    let gui = &mut kill.0[1];
    let deadline = Instant::now() + WAIT;
    while gui.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "udpchat-gui did not exit after Ctrl+Q");
        std::thread::sleep(Duration::from_millis(50));
    }
    let saved = std::fs::read_to_string(home.path().join(".local/share/udpchat-gui/app.ron")).unwrap_or_default();
    assert!(saved.contains("inner_size_points"), "the window geometry was not saved: {saved:?}");
    bob.rt.block_on(udpchat_client::wait_for(&mut bob.events, WAIT, |e| {
        matches!(e, udpchat_client::ClientEvent::Server(udpchat_client::chat::ServerMsg::Notice { nick, kind: udpchat_client::chat::NoticeKind::Quit, .. }) if nick == "ana")
    }))
    .expect("the others see ana leave");
}
