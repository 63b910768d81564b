//! A whole build without VMs: a fake [`StepRunner`] commits RUN steps as
//! config-only images, so the steps' effects on image configs, the cache,
//! `--build-arg`, `--target` and a failing RUN are checked here.

use super::*;
use crate::image::Image;

struct FakeRunner<'a> {
    images: &'a ImageStore,
}

impl StepRunner for FakeRunner<'_> {
    async fn run(&self, step: &RunStep) -> Result<Digest, BuildError> {
        if step.argv.last().map(String::as_str) == Some("false") {
            return Err(BuildError::RunFailed {
                command: step.argv.join(" "),
                code: 1,
            });
        }
        let base = self.images.resolve(&step.image)?;
        Ok(self.images.commit(Some(&base), None, &step.commit, None)?)
    }

    async fn pull(&self, name: &str) -> Result<(), BuildError> {
        Err(BuildError::Invalid(format!("no image {name} here")))
    }
}

const DOCKERFILE: &str = r#"ARG BASE=scratch
FROM ${BASE} AS first
COPY a.txt /data/
FROM scratch
ARG V=dflt
ENV P=/opt X=${V:-none}
LABEL k="v w"
EXPOSE 80 53/udp
VOLUME /vol
USER 1000
STOPSIGNAL SIGTERM
WORKDIR sub
COPY --from=first /data/a.txt ./
CMD echo $P
FROM first AS runs
RUN echo hi
"#;

struct Setup {
    _dir: tempfile::TempDir,
    images: ImageStore,
    context: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let images = ImageStore::open(&dir.path().join("image")).unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("a.txt"), b"a").unwrap();
    Setup {
        _dir: dir,
        images,
        context,
    }
}

fn options(setup: &Setup, dockerfile: &str, target: Option<&str>) -> BuildOptions {
    BuildOptions {
        dockerfile: dockerfile.as_bytes().to_vec(),
        context: Some(Context::open(&setup.context).unwrap()),
        build_args: vec![("V".into(), "given".into())],
        no_cache: false,
        target: target.map(str::to_owned),
        quiet: false,
    }
}

fn build_now(setup: &Setup, options: &BuildOptions) -> (Result<Digest, BuildError>, String) {
    let runner = FakeRunner {
        images: &setup.images,
    };
    let mut out = Vec::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = runtime.block_on(build(&setup.images, &runner, options, &mut out));
    (result, String::from_utf8(out).unwrap())
}

fn image(setup: &Setup, id: &Digest) -> Image {
    setup.images.resolve(&id.to_string()).unwrap()
}

#[test]
fn steps_shape_the_config_and_history() {
    let setup = setup();
    let (id, out) = build_now(&setup, &options(&setup, DOCKERFILE, Some("1")));
    let err = id.unwrap_err().to_string();
    assert!(
        err.contains("failed to reach build target 1"),
        "{err}: {out}"
    );

    let target = options(&setup, DOCKERFILE, None);
    let (id, out) = build_now(&setup, &target);
    let id = id.unwrap();
    assert!(out.contains("Step 1/15 : FROM ${BASE} AS first"), "{out}");
    assert!(!out.contains("Using cache"), "{out}");
    let built = image(&setup, &id);
    // The last stage: `first` plus a RUN.
    let history = built.config.history().clone();
    let last = history.last().unwrap();
    assert_eq!(last.created_by().as_deref(), Some("/bin/sh -c echo hi"));
    assert_eq!(built.diff_ids.len(), 1);

    // The middle stage, by --target (lower case, as Docker's).
    let mut middle = options(
        &setup,
        &DOCKERFILE.replace("FROM scratch\n", "FROM scratch AS mid\n"),
        Some("mid"),
    );
    let (id, _) = build_now(&setup, &middle);
    let config = image(&setup, &id.unwrap()).config;
    let run = config.config().clone().unwrap();
    let env = run.env().clone().unwrap();
    assert!(env.contains(&"P=/opt".to_string()), "{env:?}");
    assert!(env.contains(&"X=given".to_string()), "{env:?}");
    assert_eq!(run.labels().clone().unwrap()["k"], "v w");
    let exposed = run.exposed_ports().clone().unwrap();
    assert!(exposed.contains(&"80/tcp".to_string()) && exposed.contains(&"53/udp".to_string()));
    assert_eq!(run.volumes().clone().unwrap(), vec!["/vol".to_string()]);
    assert_eq!(run.user().as_deref(), Some("1000"));
    assert_eq!(run.stop_signal().as_deref(), Some("SIGTERM"));
    assert_eq!(run.working_dir().as_deref(), Some("/sub"));
    assert_eq!(
        run.cmd().clone().unwrap(),
        vec!["/bin/sh".to_string(), "-c".into(), "echo $P".into()]
    );
    let created: Vec<String> = config
        .history()
        .iter()
        .filter_map(|h| h.created_by().clone())
        .collect();
    assert!(
        created.contains(&"/bin/sh -c #(nop)  ENV P=/opt X=given".to_string()),
        "{created:?}"
    );
    assert!(
        created.contains(&"/bin/sh -c #(nop) WORKDIR /sub".to_string()),
        "{created:?}"
    );
    assert!(
        created.contains(&"/bin/sh -c #(nop)  CMD [\"/bin/sh\" \"-c\" \"echo $P\"]".to_string()),
        "{created:?}"
    );

    // Again: every step from the cache, the same image.
    let (again, out) = build_now(&setup, &middle);
    assert_eq!(again.unwrap(), id_of(&setup, &middle));
    assert!(out.contains("Using cache"), "{out}");
    // --no-cache makes new images.
    middle.no_cache = true;
    let (fresh, out) = build_now(&setup, &middle);
    assert!(!out.contains("Using cache"), "{out}");
    assert!(fresh.is_ok());
}

/// The id a (cached) build gives.
fn id_of(setup: &Setup, options: &BuildOptions) -> Digest {
    build_now(setup, options).0.unwrap()
}

#[test]
fn a_failing_run_stops_the_build() {
    let setup = setup();
    let dockerfile = "FROM scratch AS base\nCOPY a.txt /\nFROM base\nRUN false\nCMD [\"x\"]\n";
    let (result, out) = build_now(&setup, &options(&setup, dockerfile, None));
    let err = result.unwrap_err().to_string();
    assert_eq!(
        err,
        "The command '/bin/sh -c false' returned a non-zero code: 1"
    );
    assert!(!out.contains("Step 5/5"), "{out}");
    let (result, _) = build_now(&setup, &options(&setup, "FROM scratch\nRUN true\n", None));
    assert!(result.unwrap_err().to_string().contains("line 2"));
    let (result, _) = build_now(&setup, &options(&setup, "FROM busybox\n", None));
    assert!(result.unwrap_err().to_string().contains("no image busybox"));
    let (result, _) = build_now(
        &setup,
        &options(&setup, "FROM scratch\nCOPY ../x /\n", None),
    );
    assert!(result
        .unwrap_err()
        .to_string()
        .contains("outside the build context"));
}
