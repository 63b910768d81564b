//! virtio-vsock end to end with Firecracker's hybrid unix-socket scheme:
//! a host peer connects through `CONNECT <port>` and the guest echoes;
//! then the guest connects to the host's `<socket>_5678` listener.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn vsock_echo_both_directions_with_a_host_peer() {
    common::require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("v.sock");
    // Guest-initiated side: the host listens on <socket>_5678.
    let listener = UnixListener::bind(dir.path().join("v.sock_5678")).unwrap();
    let (got_tx, got_rx) = mpsc::channel();
    let host_listener = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 64];
        while !received.ends_with(b"hello from guest") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "guest closed early: {received:?}");
            received.extend_from_slice(&buf[..n]);
        }
        stream.write_all(b"reply from host\n").unwrap();
        got_tx.send(received).unwrap();
        // Keep the stream open until the guest shuts down.
        let _ = stream.read(&mut buf);
    });

    let mut child = common::hull_vmm()
        .arg("--kernel")
        .arg(common::test_guest())
        .args([
            "--cmdline",
            "vsock=1 action=exit:2",
            "--mem-mib",
            "64",
            "--vsock-cid",
            "3",
        ])
        .arg("--vsock-socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let mut transcript = Vec::new();
    let mut wait_line = |needle: &str| loop {
        match line_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                transcript.push(line.clone());
                if line.contains(needle) {
                    return transcript.clone();
                }
            }
            Err(e) => panic!("no {needle:?} from the guest ({e}); got {transcript:#?}"),
        }
    };
    wait_line("vsock: listening");

    // Host-initiated side.
    let mut host = UnixStream::connect(&socket).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    host.write_all(b"CONNECT 1234\n").unwrap();
    let mut reader = BufReader::new(host.try_clone().unwrap());
    let mut ok = String::new();
    reader.read_line(&mut ok).unwrap();
    assert!(
        ok.starts_with("OK ") && ok.ends_with('\n'),
        "handshake reply {ok:?}"
    );
    let payload = b"ping from host, twice: ping from host";
    host.write_all(payload).unwrap();
    let mut echo = vec![0u8; payload.len()];
    reader.read_exact(&mut echo).unwrap();
    assert_eq!(echo, payload);
    drop(reader);
    drop(host);

    let lines = wait_line("action: exit");
    let received = got_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(received.ends_with(b"hello from guest"));
    let status = child.wait().unwrap();
    host_listener.join().unwrap();
    let text = lines.join("\n");
    assert_eq!(status.code(), Some(2), "{text}");
    assert!(text.contains("vsock: guest cid 0x3"), "{text}");
    assert!(
        text.contains(&format!("vsock: echoed bytes {:#x}", payload.len())),
        "{text}"
    );
    assert!(
        text.contains("vsock: host replied reply from host"),
        "{text}"
    );
}

#[test]
fn bad_vsock_socket_path_is_a_one_line_error() {
    common::require_kvm();
    let mut command = common::hull_vmm();
    command.arg("--kernel").arg(common::test_guest()).args([
        "--vsock-socket",
        "/nonexistent/dir/v.sock",
        "--vsock-cid",
        "3",
    ]);
    let output = common::run_with_timeout(command, Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(1));
    let err = common::stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot listen on vsock socket"), "{err}");
}
