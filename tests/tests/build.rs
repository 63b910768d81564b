//! `hull build`: a multi-stage Dockerfile builds (each RUN in its own
//! microVM) and its image runs; a second build comes from the cache; a
//! failing RUN leaves no image, tag or container; `.dockerignore` keeps
//! files out of the context; SHELL, WORKDIR, `--chown` by name and ADD of
//! bzip2 and xz archives behave as Docker's; `-f`, `--build-arg`,
//! `--target` and `--no-cache` do, and RUN's exec form, USER, LABEL,
//! EXPOSE, VOLUME, STOPSIGNAL and CMD shape the image as Docker's.

use hull_tests::harness::{ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a context directory with `files` (name, content).
fn context(hull: &Hull, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = hull.scratch.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, content) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

/// A tar archive holding one file.
fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    builder.into_inner().unwrap()
}

/// Writes a gzip-compressed tar archive holding one file.
fn write_tar_gz(path: &Path, name: &str, content: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    encoder.write_all(&tar_of(name, content)).unwrap();
    encoder.finish().unwrap();
}

fn build(hull: &Hull, args: &[&str], dir: &Path) -> std::process::Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push(dir.to_str().unwrap());
    hull.run(all)
}

/// Builds `dockerfile` in the context `dir`, untagged; it must fail with
/// exit code 1 and `message` on stderr. Returns what it printed.
fn build_fails(hull: &Hull, dir: &Path, dockerfile: &str, message: &str) -> std::process::Output {
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    let out = build(hull, &[], dir);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains(message), "{}", stderr(&out));
    out
}

#[test]
fn multi_stage_build_runs_and_is_cached() {
    let hull = Hull::with_busybox();
    let dockerfile = format!(
        r#"# syntax=docker/dockerfile:1
ARG GREETING=hello
FROM {BUSYBOX_IMAGE} AS gen
ARG GREETING
RUN echo "$GREETING from stage one" > /made.txt
FROM {BUSYBOX_IMAGE}
COPY --from=gen /made.txt /app/made.txt
# the context, without what .dockerignore leaves out
COPY . /ctx/
COPY note.txt /app/
ADD bundle.tar.gz /opt/
ENV WHO=world \
    EXTRA=1
WORKDIR /app
ENTRYPOINT ["sh", "-c", "cat made.txt note.txt; echo \"hi $WHO from $(pwd)\"; ls -a /ctx; cat /opt/inside/packed.txt"]
"#
    );
    let dir = context(
        &hull,
        "ctx",
        &[
            ("Dockerfile", &dockerfile),
            ("note.txt", "a note from the context\n"),
            ("secret.txt", "do not ship\n"),
            (".dockerignore", "secret.txt\n"),
        ],
    );

    write_tar_gz(
        &dir.join("bundle.tar.gz"),
        "inside/packed.txt",
        b"unpacked by ADD\n",
    );
    let out = build(&hull, &["-t", "hull.test/built:1"], &dir);
    let text = stdout(&out);
    println!("{text}");
    assert!(
        out.status.success(),
        "build failed: {text}\n{}",
        stderr(&out)
    );
    assert!(
        text.contains("Step 1/11 : FROM hull.test/busybox:latest AS gen"),
        "{text}"
    );
    assert!(text.contains(" ---> Running in "), "{text}");
    assert!(
        text.contains("Successfully tagged hull.test/built:1"),
        "{text}"
    );
    let built = text
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .expect("an id")
        .to_string();

    // The steps' images are the cache, shown only with -a; as Docker's,
    // `images` shows the first stage's last image untagged.
    let images = ok(&hull, &["images"]);
    assert_eq!(images.matches("<none>").count(), 2, "{images}");
    let all = ok(&hull, &["images", "-a"]);
    assert!(all.matches("<none>").count() > 10, "{all}");

    let run = ok(&hull, &["run", "--rm", "hull.test/built:1"]);
    assert!(run.contains("hello from stage one"), "{run}");
    assert!(run.contains("a note from the context"), "{run}");
    assert!(run.contains("hi world from /app"), "{run}");
    assert!(
        run.contains("note.txt") && run.contains("Dockerfile"),
        "{run}"
    );
    assert!(
        !run.contains("secret"),
        ".dockerignore was not honoured: {run}"
    );

    // Again: every step from the cache, no VM.
    let started = std::time::Instant::now();
    let again = build(&hull, &["-t", "hull.test/built:1"], &dir);
    let text = stdout(&again);
    println!("{text}");
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(text.contains("Using cache"), "{text}");
    assert!(!text.contains("Running in"), "a step ran again: {text}");
    assert!(
        text.contains(&format!("Successfully built {built}")),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    let quiet = build(&hull, &["-q"], &dir);
    let id = stdout(&quiet);
    assert_eq!(id.lines().count(), 1, "{id}");
    assert!(id.starts_with(&format!("sha256:{built}")), "{id}");

    let history = ok(&hull, &["history", "--no-trunc", "hull.test/built:1"]);
    println!("{history}");
    assert!(
        history.contains("/bin/sh -c #(nop)  ENV WHO=world EXTRA=1"),
        "{history}"
    );
    assert!(
        history.contains("/bin/sh -c #(nop) WORKDIR /app"),
        "{history}"
    );
    hull.assert_nothing_left();
}

#[test]
fn failing_run_leaves_nothing() {
    let hull = Hull::with_busybox();
    let dir = context(
        &hull,
        "bad",
        &[(
            "Dockerfile",
            &format!("FROM {BUSYBOX_IMAGE}\nRUN echo going && exit 3\nCMD [\"true\"]\n"),
        )],
    );
    // Docker's exit code is the RUN's.
    let out = build(&hull, &["-t", "hull.test/bad:1"], &dir);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stderr(&out)
            .contains("The command '/bin/sh -c echo going && exit 3' returned a non-zero code: 3"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("going"), "{}", stdout(&out));
    let images = ok(&hull, &["images"]);
    assert!(!images.contains("hull.test/bad"), "{images}");
    assert_eq!(ok(&hull, &["ps", "-a", "-q"]), "");
    hull.assert_nothing_left();

    // Parse errors name their line, and boot nothing.
    build_fails(
        &hull,
        &dir,
        &format!("FROM {BUSYBOX_IMAGE}\n\nFROB x\n"),
        "Dockerfile parse error line 3: unknown instruction: FROB",
    );
    // Nothing outside the context is copied.
    build_fails(
        &hull,
        &dir,
        &format!("FROM {BUSYBOX_IMAGE}\nCOPY ../outside /x\n"),
        "forbidden path outside the build context",
    );
}

#[test]
fn shell_workdir_chown_by_name_and_add_as_docker() {
    let hull = Hull::with_busybox();
    let dockerfile = format!(
        r#"FROM {BUSYBOX_IMAGE}
SHELL ["/bin/sh", "-ec"]
COPY --chown=user:wheel note.txt /owned/
COPY --chown=nobody note.txt /owned-too/
ADD packed.tar.bz2 packed.tar.xz /unpacked/
WORKDIR /srv/made/here
"#
    );
    let dir = context(
        &hull,
        "names",
        &[("Dockerfile", &dockerfile), ("note.txt", "n\n")],
    );
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&tar_of("from-bzip2", b"b\n")).unwrap();
    std::fs::write(dir.join("packed.tar.bz2"), bz.finish().unwrap()).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&tar_of("from-xz", b"x\n")).unwrap();
    std::fs::write(dir.join("packed.tar.xz"), xz.finish().unwrap()).unwrap();
    let out = build(&hull, &["-t", "hull.test/base:1"], &dir);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // SHELL is kept in the image's config, as Docker keeps it.
    let shell = ok(
        &hull,
        &[
            "inspect",
            "-f",
            "{{json .Config.Shell}}",
            "hull.test/base:1",
        ],
    );
    assert_eq!(shell.trim(), r#"["/bin/sh","-ec"]"#);
    // WORKDIR made its directory (root's, 0755); --chown took names from
    // the image's /etc/passwd and /etc/group, a user alone its uid as gid.
    let run = ok(
        &hull,
        &[
            "run",
            "--rm",
            "hull.test/base:1",
            "sh",
            "-c",
            "pwd; stat -c '%u:%g %a' /srv/made/here /owned/note.txt /owned-too/note.txt; \
             cat /unpacked/from-bzip2 /unpacked/from-xz",
        ],
    );
    assert_eq!(
        run.lines().collect::<Vec<_>>(),
        [
            "/srv/made/here",
            "0:0 755",
            "1000:10 644",
            "65534:65534 644",
            "b",
            "x"
        ],
        "{run}"
    );
    // An image built FROM it runs its RUN steps through that SHELL: `-e`
    // ends the step at the first failure.
    let out = build_fails(
        &hull,
        &dir,
        "FROM hull.test/base:1\nRUN false; echo survived\n",
        "The command '/bin/sh -ec false; echo survived' returned a non-zero code: 1",
    );
    assert!(
        !stdout(&out).lines().any(|l| l == "survived"),
        "{}",
        stdout(&out)
    );
    // A name the image does not know is an error, as Docker's.
    build_fails(
        &hull,
        &dir,
        &format!("FROM {BUSYBOX_IMAGE}\nCOPY --chown=nosuch note.txt /x/\n"),
        "unable to convert uid/gid chown string to host mapping: can't find uid for nosuch: no such uid: nosuch",
    );
    hull.assert_nothing_left();
}

#[test]
fn contexts_and_dockerfiles_from_stdin() {
    let hull = Hull::with_busybox();
    // A Dockerfile alone: no context.
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nENV FROM_STDIN=1\n");
    let out = hull.run_with_input(&["build", "-q", "-"], dockerfile.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let env = ok(&hull, &["inspect", "-f", "{{.Config.Env}}", &id]);
    assert!(env.contains("FROM_STDIN=1"), "{env}");

    // -q: a RUN's output is not shown either, only the id.
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nRUN echo not-shown\n");
    let out = hull.run_with_input(&["build", "-q", "--no-cache", "-"], dockerfile.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("sha256:") && !text.contains("not-shown"),
        "{text}"
    );

    // A tar archive: the context, its Dockerfile inside.
    let mut builder = tar::Builder::new(Vec::new());
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nCOPY data.txt /srv/\n");
    for (name, content) in [
        ("Dockerfile", dockerfile.as_bytes()),
        ("data.txt", b"data\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, content).unwrap();
    }
    let archive = builder.into_inner().unwrap();
    let out = hull.run_with_input(&["build", "-t", "hull.test/stdin:1", "-"], &archive);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Successfully tagged hull.test/stdin:1"));
    let history = ok(&hull, &["history", "--no-trunc", "hull.test/stdin:1"]);
    assert!(
        history.contains("COPY file:") && history.contains(" in /srv/"),
        "{history}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(hull.root().join("image"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-build"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn options_and_config_instructions_as_docker() {
    let hull = Hull::with_busybox();
    let dockerfile = format!(
        r#"FROM {BUSYBOX_IMAGE} AS base
ARG FLAVOUR=plain
RUN ["sh", "-c", "echo exec form, $FLAVOUR > /flavour"]
USER nobody
LABEL org.example.tier="backend"
EXPOSE 8080/tcp
VOLUME /data
STOPSIGNAL SIGINT
CMD ["cat", "/flavour"]
FROM base AS later
RUN echo the later stage ran
"#
    );
    // A Dockerfile by another name, elsewhere in the context.
    let dir = context(&hull, "opts", &[("build/Opts.df", &dockerfile)]);
    let file = dir.join("build/Opts.df");
    let args = [
        "-f",
        file.to_str().unwrap(),
        "--build-arg",
        "FLAVOUR=spicy",
        "--target",
        "base",
        "-t",
        "hull.test/opts:1",
    ];
    let out = build(&hull, &args, &dir);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    // --target: the stages after it are not built.
    assert!(!text.contains("the later stage ran"), "{text}");
    assert_eq!(
        ok(&hull, &["run", "--rm", "hull.test/opts:1"]),
        "exec form, spicy"
    );
    assert_eq!(
        ok(&hull, &["run", "--rm", "hull.test/opts:1", "id", "-u"]),
        "65534"
    );
    let config = |template: &str| ok(&hull, &["inspect", "-f", template, "hull.test/opts:1"]);
    assert_eq!(config("{{.Config.User}}"), "nobody");
    assert_eq!(
        config(r#"{{index .Config.Labels "org.example.tier"}}"#),
        "backend"
    );
    assert_eq!(
        config("{{json .Config.ExposedPorts}}"),
        r#"{"8080/tcp":{}}"#
    );
    assert_eq!(config("{{json .Config.Volumes}}"), r#"{"/data":{}}"#);
    assert_eq!(config("{{.Config.StopSignal}}"), "SIGINT");
    assert_eq!(config("{{json .Config.Cmd}}"), r#"["cat","/flavour"]"#);

    // Again: from the cache; with --no-cache, the RUN runs again.
    let again = stdout(&build(&hull, &args, &dir));
    assert!(
        again.contains("Using cache") && !again.contains("Running in"),
        "{again}"
    );
    let mut fresh = args.to_vec();
    fresh.push("--no-cache");
    let out = build(&hull, &fresh, &dir);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("Running in") && !text.contains("Using cache"),
        "{text}"
    );
    hull.assert_nothing_left();
}
