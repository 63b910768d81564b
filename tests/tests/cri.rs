//! Kubernetes' path: Debian's containerd 1.6 with its CRI plugin and
//! Debian's CNI plugins, runtime handler `hull` (Hull's shim), images from
//! a registry on the test namespace's loopback, driven by a
//! CRI client as a kubelet drives it: a pod, two containers in it sharing
//! its one microVM (its network, so localhost, and its IPC namespace),
//! exec, status, logs, stats, stop and removal, and nothing left afterwards.

use hull_tests::containerd::Containerd;
use hull_tests::cri::{connect, container, pod, pull_images, sh_in};
use k8s_cri::v1::{
    security_profile, ContainerState, ContainerStatsRequest, ContainerStatusRequest,
    CreateContainerRequest, ExecSyncRequest, LinuxContainerConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, ListImagesRequest, RemoveContainerRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, SecurityProfile, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest, UpdateContainerResourcesRequest,
};
use std::time::Duration;

#[test]
fn a_pod_runs_on_hull_through_containerds_cri() {
    let containerd = Containerd::start_with_cri();
    containerd.push_images();
    let logs = containerd.hull.scratch.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut cri, mut images) = connect(&containerd.socket()).await;
        pull_images(&mut images).await;
        let listed = images
            .list_images(ListImagesRequest::default())
            .await
            .expect("ListImages")
            .into_inner();
        assert!(
            listed
                .images
                .iter()
                .any(|i| i.repo_tags.iter().any(|t| t.contains("pause"))),
            "{listed:?}"
        );

        let pod_config = pod("web", "hull-test-pod-1", &logs);
        let pod = cri
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod_config.clone()),
                runtime_handler: "hull".into(),
            })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", containerd.log()))
            .into_inner()
            .pod_sandbox_id;

        let mut ids = Vec::new();
        for (name, script) in [
            (
                "one",
                "echo hello-from-one; mkdir /www; echo pod-local > /www/index.html; \
                 exec httpd -f -p 8080 -h /www",
            ),
            ("two", "echo hello-from-two; exec sleep 600"),
        ] {
            let mut config = container(name, script);
            if name == "two" {
                // seccompProfile: RuntimeDefault (containerd's profile).
                config.linux = Some(LinuxContainerConfig {
                    security_context: Some(LinuxContainerSecurityContext {
                        seccomp: Some(SecurityProfile {
                            profile_type: security_profile::ProfileType::RuntimeDefault as i32,
                            localhost_ref: String::new(),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            let id = cri
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(config),
                    sandbox_config: Some(pod_config.clone()),
                })
                .await
                .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}\n{}", containerd.log()))
                .into_inner()
                .container_id;
            cri.start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}\n{}", containerd.log()));
            ids.push(id);
        }

        let exec = cri
            .exec_sync(ExecSyncRequest {
                container_id: ids[0].clone(),
                cmd: vec!["sh".into(), "-c".into(), "uname -r; exit 3".into()],
                timeout: 60,
            })
            .await
            .expect("ExecSync")
            .into_inner();
        assert_eq!(exec.exit_code, 3, "{exec:?}");
        // The guest loads the filter the spec names: none for one (a
        // kubelet's default, Unconfined), containerd's default for two.
        let seccomp = "grep ^Seccomp: /proc/self/status";
        assert_eq!(sh_in(&mut cri, &ids[0], seccomp).await, "Seccomp:\t0");
        assert_eq!(sh_in(&mut cri, &ids[1], seccomp).await, "Seccomp:\t2");
        assert!(
            String::from_utf8_lossy(&exec.stdout)
                .trim()
                .ends_with("-hull"),
            "{exec:?}"
        );

        // One VM for the pod: the sandbox container and both others have
        // one VMM, and one network (container two reaches one's server on
        // localhost) and IPC namespace, but mount namespaces of their own.
        let engine_root = containerd.hull.root().join("containerd/k8s.io");
        let out = containerd
            .hull
            .command(["--root".as_ref(), engine_root.as_os_str()])
            .args(["inspect", "-f", "{{.HullSandbox.VmmPid}}", &pod, &ids[0], &ids[1]])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let vmms: Vec<&str> = text.lines().collect();
        assert!(
            out.status.success() && vmms.len() == 3 && vmms.iter().all(|v| *v == vmms[0] && *v != "0"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fetched = sh_in(
            &mut cri,
            &ids[1],
            "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && exit; sleep 0.2; done; exit 1",
        )
        .await;
        assert_eq!(fetched, "pod-local");
        let namespaces = "readlink /proc/self/ns/ipc; readlink /proc/self/ns/mnt";
        let one = sh_in(&mut cri, &ids[0], namespaces).await;
        let two = sh_in(&mut cri, &ids[1], namespaces).await;
        let (one, two): (Vec<&str>, Vec<&str>) = (one.lines().collect(), two.lines().collect());
        assert_eq!(one[0], two[0], "the pod's IPC namespace");
        assert_ne!(one[1], two[1], "a mount namespace each");

        // Limits change in a running container (UpdateContainerResources).
        cri.update_container_resources(UpdateContainerResourcesRequest {
            container_id: ids[1].clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", containerd.log()));
        let limit = sh_in(&mut cri, &ids[1], "cat /sys/fs/cgroup/memory.max").await;
        assert_eq!(limit, (64u64 << 20).to_string());

        // The guest's OOM killer ends a container of the pod: exit 137 and
        // the reason OOMKilled (the shim's TaskOOM); the pod lives on.
        let mut hog = container("hog", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done");
        hog.linux = Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: 32 << 20,
                ..Default::default()
            }),
            ..Default::default()
        });
        let hog = cri
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(hog),
                sandbox_config: Some(pod_config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer hog: {e}\n{}", containerd.log()))
            .into_inner()
            .container_id;
        cri.start_container(StartContainerRequest {
            container_id: hog.clone(),
        })
        .await
        .expect("StartContainer hog");
        let mut ended = None;
        for _ in 0..600 {
            let status = cri
                .container_status(ContainerStatusRequest {
                    container_id: hog.clone(),
                    verbose: false,
                })
                .await
                .expect("ContainerStatus hog")
                .into_inner()
                .status
                .expect("a status");
            if status.state == ContainerState::ContainerExited as i32 {
                ended = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ended = ended.expect("the hog did not end within 60s");
        assert_eq!((ended.exit_code, ended.reason.as_str()), (137, "OOMKilled"), "{ended:?}");
        cri.remove_container(RemoveContainerRequest { container_id: hog })
            .await
            .expect("RemoveContainer hog");
        assert_eq!(sh_in(&mut cri, &ids[1], "echo still-here").await, "still-here");

        let status = cri
            .container_status(ContainerStatusRequest {
                container_id: ids[0].clone(),
                verbose: false,
            })
            .await
            .expect("ContainerStatus")
            .into_inner()
            .status
            .expect("a status");
        assert_eq!(status.state, ContainerState::ContainerRunning as i32);

        // The CRI log file, as containerd writes it from the task's stdout.
        let log = logs.join("one.log");
        let mut text = String::new();
        for _ in 0..100 {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("hello-from-one") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(text.contains(" stdout F hello-from-one"), "{text:?}");

        let stats = cri
            .container_stats(ContainerStatsRequest {
                container_id: ids[0].clone(),
            })
            .await
            .expect("ContainerStats")
            .into_inner()
            .stats
            .expect("stats");
        let memory = stats.memory.expect("memory stats");
        assert!(
            memory.working_set_bytes.is_some_and(|v| v.value > 0)
                || memory.usage_bytes.is_some_and(|v| v.value > 0),
            "{memory:?}"
        );

        for id in &ids {
            cri.stop_container(StopContainerRequest {
                container_id: id.clone(),
                timeout: 5,
            })
            .await
            .expect("StopContainer");
            cri.remove_container(RemoveContainerRequest {
                container_id: id.clone(),
            })
            .await
            .expect("RemoveContainer");
        }
        cri.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .expect("StopPodSandbox");
        cri.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .expect("RemovePodSandbox");
    });
    containerd.assert_nothing_left();
}
