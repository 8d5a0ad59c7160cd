//! LAN discovery (docs/PROTOCOL.md §16) and the plain-text gateway (§17)
//! on a real, if small, LAN: network namespaces this test makes, joined by
//! a bridge in a namespace of its own, with addresses (10.213.N.0/24) that
//! exist only inside them. Every udpchat process, and every broadcast and
//! multicast, runs inside those namespaces, never in the host's; the
//! namespaces go when the test ends, failed or not ([`Lan`]'s Drop).
//!
//! Making namespaces needs root (and iproute2). Without them the tests say
//! so and pass; with `CI` set they fail instead, since `.ci/run` runs as
//! root and these tests must run there.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use common::BIN;
use common::proc::Proc;

/// Namespaces made by this test run (unique names), deleted on drop.
struct Lan {
    names: Vec<String>,
    /// The third octet of the test's 10.213.N.0/24.
    net: u8,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

impl Lan {
    /// A bridge namespace and `hosts` namespaces on it: host `i` (from 1)
    /// has 10.213.N.i/24. None (after saying why) where namespaces cannot
    /// be made and CI is not set.
    fn new(hosts: usize) -> Option<Self> {
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = format!("uclan{}x{run}", pid % 1_000_000);
        let net = u8::try_from((pid + run) % 200 + 20).expect("fits");
        let mut lan = Self { names: Vec::new(), net };
        match lan.build(&prefix, hosts) {
            Ok(()) => Some(lan),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot make network namespaces ({e}); CI runs as root and must run this test"
                );
                eprintln!("skipped: cannot make network namespaces (needs root and iproute2): {e}");
                None
            }
        }
    }

    fn build(&mut self, prefix: &str, hosts: usize) -> Result<(), String> {
        let bridge = format!("{prefix}b");
        ip(&["netns", "add", &bridge])?;
        self.names.push(bridge.clone());
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        for i in 1..=hosts {
            let ns = format!("{prefix}h{i}");
            ip(&["netns", "add", &ns])?;
            self.names.push(ns.clone());
            let port = format!("p{i}");
            // Both ends are made inside the namespaces: nothing appears in
            // the host's.
            ip(&["link", "add", "v0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &bridge])?;
            ip(&["-n", &bridge, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &bridge, "link", "set", &port, "up"])?;
            let addr = format!("{}/24", self.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "v0"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", "v0", "up"])?;
            // So that 255.255.255.255 has a way out (the LAN is the only one).
            ip(&["-n", &ns, "route", "add", "default", "dev", "v0"])?;
        }
        Ok(())
    }

    fn addr(&self, host: usize) -> String {
        format!("10.213.{}.{host}", self.net)
    }

    fn ns(&self, host: usize) -> &str {
        &self.names[host]
    }

    /// A command run inside host `host`'s namespace.
    fn exec(&self, host: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(host), program]);
        cmd
    }

    /// `udpchat server` in host `host`'s namespace, listening on every
    /// address, port 7667 (the namespace's own), with discovery on by the
    /// default rule (its only address is private). Returns it and its key.
    fn server(&self, host: usize, name: &str, dir: &tempfile::TempDir, extra: &[&str]) -> (Proc, String) {
        let mut cmd = self.exec(host, BIN);
        cmd.args(["server", "--listen", "[::]:7667", "--console", "off", "--server-name", name, "--data-dir"])
            .arg(dir.path().join(name))
            .args(extra)
            .env_remove("UDPCHAT_LAN_DISCOVERY")
            .env_remove("UDPCHAT_SERVER_PASSWORD");
        let mut server = Proc::spawn(name, &mut cmd);
        server.expect("listening on");
        let key = server.expect("server key").rsplit(' ').next().expect("key").to_owned();
        server.expect("LAN discovery: on (answering `udpchat discover`, announced over mDNS");
        (server, key)
    }

    fn discover_json(&self, host: usize) -> Vec<serde_json::Value> {
        let out = self.exec(host, BIN).args(["discover", "--json", "--timeout", "2"]).output().expect("discover");
        assert!(out.status.success(), "discover failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("discover --json prints JSON")
    }
}

fn has_python_zeroconf() -> bool {
    let ok = Command::new("/usr/bin/python3").args(["-c", "import zeroconf"]).status().is_ok_and(|s| s.success());
    assert!(ok || std::env::var_os("CI").is_none(), "python3-zeroconf is needed in CI (.ci/run installs it)");
    ok
}

#[test]
fn servers_are_found_by_broadcast_mdns_and_zeroconf_and_chat_lan_connects() {
    let Some(lan) = Lan::new(3) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_party, party_key) = lan.server(1, "lan party", &dir, &["--plain-listen", "[::]:7667"]);

    // udpchat discover, from another namespace: by broadcast and mDNS.
    let found = lan.discover_json(2);
    assert_eq!(found.len(), 1, "{found:#?}");
    let s = &found[0];
    assert_eq!(s["name"], "lan party");
    assert_eq!(s["address"], format!("{}:7667", lan.addr(1)));
    assert_eq!(s["key"], party_key.as_str());
    assert_eq!(s["password"], false);
    assert_eq!(s["plain_port"], 7667);
    assert_eq!(s["via"], serde_json::json!(["broadcast", "mdns"]));

    // An mDNS implementation nobody here wrote sees it too.
    if has_python_zeroconf() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/zeroconf_browse.py");
        let out = lan.exec(2, "/usr/bin/python3").args([script, "3"]).output().expect("zeroconf browse");
        let text = String::from_utf8_lossy(&out.stdout);
        let expected = format!("lan party|{}|7667|{party_key}|no", lan.addr(1));
        assert!(
            text.lines().any(|l| l == expected),
            "zeroconf printed {text:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // chat --lan connects to the only server, and a plain-text member on
    // the same port hears it.
    let mut nc = Proc::spawn("nc", lan.exec(3, "nc").args(["-u", &lan.addr(1), "7667"]));
    nc.type_line("dina: a first line long enough to earn room for the next one");
    nc.expect("Welcome dina");
    let mut chat = Proc::spawn(
        "chat --lan",
        lan.exec(2, BIN)
            .args(["chat", "--lan", "--plain", "--nick", "zed", "--known-servers"])
            .arg(dir.path().join("known_servers")),
    );
    chat.expect("logged in to lan party as zed");
    chat.type_line("hello over the LAN");
    nc.expect("zed: hello over the LAN");
    drop(nc);
    drop(chat);

    // A second server is a second entry; chat --lan then asks which (and,
    // without a terminal to ask on, names them).
    let (_second, second_key) = lan.server(3, "second", &dir, &[]);
    let found = lan.discover_json(2);
    let names: Vec<&str> = found.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["lan party", "second"], "{found:#?}");
    assert_eq!(found[1]["key"], second_key.as_str());
    assert_eq!(found[1]["plain_port"], serde_json::Value::Null);
    let out = lan
        .exec(2, BIN)
        .args(["chat", "--lan", "--plain", "--nick", "zed", "--known-servers"])
        .arg(dir.path().join("known_servers"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("2 servers answered") && err.contains("second"), "{err}");
}

/// A probe whose source address is forged (a victim's) gets an answer no
/// larger than itself, or none: discovery cannot be used to amplify.
#[test]
fn a_spoofed_probe_gets_no_more_than_it_sent() {
    let Some(lan) = Lan::new(3) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_server, _) = lan.server(1, "lan party", &dir, &["--lan-discovery", "on"]);
    // The victim (host 3) records the size of every datagram it receives.
    let victim_script = "import socket,sys\n\
        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
        s.bind(('0.0.0.0',40000))\n\
        print('ready',flush=True)\n\
        s.settimeout(3)\n\
        try:\n\
        \x20   while True:\n\
        \x20       d,a=s.recvfrom(65536)\n\
        \x20       print('got',len(d),d[0],a[0],flush=True)\n\
        except socket.timeout:\n\
        \x20   print('done',flush=True)\n";
    let mut victim = Proc::spawn("victim", lan.exec(3, "/usr/bin/python3").args(["-c", victim_script]));
    victim.expect("ready");
    // Host 2 sends probes with the victim's address as their source, as
    // raw IP datagrams it writes whole (the UDP checksum 0 means none).
    let prober = format!(
        "import socket,struct,time\n\
         src,dst=socket.inet_aton('{victim}'),socket.inet_aton('{server}')\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)\n\
         for n in (16,71,72,512):\n\
         \x20   p=(b'\\x80udpchat'+bytes(range(8))).ljust(n,b'\\0')\n\
         \x20   u=struct.pack('!HHHH',40000,7667,8+n,0)+p\n\
         \x20   h=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(u),0,0,64,17,0,src,dst)\n\
         \x20   s.sendto(h+u,('{server}',0))\n\
         \x20   time.sleep(0.2)\n",
        victim = lan.addr(3),
        server = lan.addr(1)
    );
    let status = lan.exec(2, "/usr/bin/python3").args(["-c", &prober]).status().unwrap();
    assert!(status.success());
    let (lines, _) = victim.finish();
    let got: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("got "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    // "lan party" makes a 72-byte beacon: the 16- and 71-byte probes are
    // too small for it and get nothing; the others get 72 bytes.
    assert_eq!(got, [72, 72], "{lines:?}");
}

/// The classic LAN chat client ("WhatsUDP", tests/fixtures/classic): it
/// binds the chat port with SO_REUSEPORT and SO_BROADCAST, sends
/// `username: text` to the server and prints whatever is broadcast on the
/// port. With `plain_broadcast` the server broadcasts the lobby's lines
/// there, so it and a udpchat member hear each other.
#[test]
fn the_classic_lan_broadcast_client_talks_with_a_udpchat_member() {
    let Some(lan) = Lan::new(3) else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broadcast.toml");
    let broadcast = format!("10.213.{}.255:2410", lan.net);
    std::fs::write(&config, format!("plain_listen = \"0.0.0.0:2410\"\nplain_broadcast = \"{broadcast}\"\n")).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let (_server, _) = lan.server(1, "lan party", &dir, &["--config", &config]);
    let mut bob = Proc::spawn(
        "bob",
        lan.exec(3, BIN)
            .args(["chat", "--plain", "--nick", "bob", "--server", &format!("{}:7667", lan.addr(1)), "--known-servers"])
            .arg(dir.path().join("known_servers")),
    );
    bob.expect("you joined #lobby");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/classic/whatsudp_client.py");
    let mut classic = Proc::spawn(
        "whatsudp",
        lan.exec(2, "/usr/bin/python3").args(["-u", script]).env("CHAT_HOST", lan.addr(1)).env("CHAT_PORT", "2410"),
    );
    classic.expect("Welcome to WhatsUDP Messenger!");
    classic.type_line("wati");
    classic.type_line("halo dari jaringan lokal");
    bob.expect("<wati> halo dari jaringan lokal");
    // Its own line comes back by broadcast, as with its own server.
    classic.expect("wati: halo dari jaringan lokal");
    bob.type_line("hai wati");
    classic.expect("bob: hai wati");
}
