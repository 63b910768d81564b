//! Docker's restart policies: whether a container that exited starts again.

use crate::container::ContainerRecord;

/// Docker's restart decision.
pub(super) fn should_restart(
    record: &ContainerRecord,
    exit_code: i32,
    stopped_by_user: bool,
) -> bool {
    let policy = &record.host_config.restart_policy;
    match policy.name.as_str() {
        "always" => !stopped_by_user,
        "unless-stopped" => !stopped_by_user,
        "on-failure" => {
            !stopped_by_user
                && exit_code != 0
                && (policy.maximum_retry_count == 0
                    || record.restart_count < policy.maximum_retry_count)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{ContainerConfig, HostConfig, RestartPolicy};

    fn record(policy: &str, maximum_retry_count: u32, restart_count: u32) -> ContainerRecord {
        let host_config = HostConfig {
            restart_policy: RestartPolicy {
                name: policy.into(),
                maximum_retry_count,
            },
            ..Default::default()
        };
        let mut record = ContainerRecord::new(
            "0".repeat(64),
            "/c".into(),
            "sha256:x".into(),
            "img".into(),
            ContainerConfig::default(),
            host_config,
        );
        record.restart_count = restart_count;
        record
    }

    #[test]
    fn no_policy_never_restarts() {
        for code in [0, 1, 137] {
            assert!(!should_restart(&record("", 0, 0), code, false));
            assert!(!should_restart(&record("no", 0, 0), code, false));
        }
    }

    #[test]
    fn always_and_unless_stopped_restart_until_the_user_stops_them() {
        for policy in ["always", "unless-stopped"] {
            assert!(should_restart(&record(policy, 0, 0), 0, false), "{policy}");
            assert!(should_restart(&record(policy, 0, 50), 1, false), "{policy}");
            assert!(
                !should_restart(&record(policy, 0, 0), 137, true),
                "{policy} stopped by the user"
            );
        }
    }

    #[test]
    fn on_failure_restarts_failures_up_to_its_count() {
        assert!(
            !should_restart(&record("on-failure", 0, 0), 0, false),
            "a clean exit is no failure"
        );
        assert!(
            should_restart(&record("on-failure", 0, 100), 1, false),
            "no count: no limit"
        );
        assert!(should_restart(&record("on-failure", 3, 0), 1, false));
        assert!(should_restart(&record("on-failure", 3, 2), 1, false));
        assert!(
            !should_restart(&record("on-failure", 3, 3), 1, false),
            "three restarts were allowed"
        );
        assert!(
            !should_restart(&record("on-failure", 3, 0), 1, true),
            "stopped by the user"
        );
    }
}
