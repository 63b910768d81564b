//! A CRI client on containerd's socket, as a kubelet has one.

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ExecSyncRequest, ImageSpec, PodSandboxConfig,
    PodSandboxMetadata, PullImageRequest,
};
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// containerd's CRI services on `socket`.
pub async fn connect(
    socket: &Path,
) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
    let socket = socket.to_path_buf();
    let channel = Endpoint::try_from("http://[::]")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket: PathBuf = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("connecting to containerd's CRI");
    (
        RuntimeServiceClient::new(channel.clone()),
        ImageServiceClient::new(channel),
    )
}

/// A pod's configuration: `name`, its logs in `log_directory`.
pub fn pod(name: &str, uid: &str, log_directory: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_directory.display().to_string(),
        ..Default::default()
    }
}

/// A busybox container `name` running `sh -c SCRIPT`, logging to `name.log`.
pub fn container(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: crate::containerd::BUSYBOX_IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// Pulls the CRI tests' images from their registry, as a kubelet pulls a
/// pod's images before it creates its containers.
pub async fn pull_images(images: &mut ImageServiceClient<Channel>) {
    for name in [
        crate::containerd::BUSYBOX_IMAGE,
        crate::containerd::PAUSE_IMAGE,
    ] {
        images
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("PullImage {name}: {e}"));
    }
}

/// Runs `sh -c SCRIPT` in container `id` (CRI's ExecSync); its output,
/// trimmed, once it exited 0.
pub async fn sh_in(cri: &mut RuntimeServiceClient<Channel>, id: &str, script: &str) -> String {
    let out = cri
        .exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            timeout: 60,
        })
        .await
        .unwrap_or_else(|e| panic!("ExecSync {script:?}: {e}"))
        .into_inner();
    assert_eq!(out.exit_code, 0, "{script:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
