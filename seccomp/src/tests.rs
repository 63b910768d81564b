use super::*;
use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

/// Runs `program` on one call, as the kernel would.
fn run(program: &[Instruction], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    for arg in args {
        data.extend_from_slice(&arg.to_le_bytes());
    }
    let word = |offset: u32| {
        let at = offset as usize;
        u32::from_le_bytes(data[at..at + 4].try_into().unwrap())
    };
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let insn = program[pc];
        pc += 1;
        let branch = |taken: bool| if taken { insn.jt } else { insn.jf } as usize;
        match insn.code {
            BPF_LD_W_ABS => a = word(insn.k),
            BPF_ALU_AND_K => a &= insn.k,
            BPF_JMP_JA => pc += insn.k as usize,
            BPF_JEQ => pc += branch(a == insn.k),
            BPF_JGT => pc += branch(a > insn.k),
            BPF_JGE => pc += branch(a >= insn.k),
            BPF_RET_K => return insn.k,
            code => panic!("unexpected opcode {code:#x}"),
        }
    }
}

fn nr(name: &str) -> u32 {
    syscalls::Sysno::from_str(name).unwrap().id() as u32
}

fn arg(index: usize, op: Op, value: u64, two: Option<u64>) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    match two {
        Some(two) => builder.value_two(two),
        None => builder,
    }
    .build()
    .unwrap()
}

fn call(names: &[&str], action: LinuxSeccompAction, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .action(action)
        .args(args)
        .build()
        .unwrap()
}

fn profile(default: LinuxSeccompAction, calls: Vec<LinuxSyscall>) -> LinuxSeccomp {
    LinuxSeccompBuilder::default()
        .default_action(default)
        .syscalls(calls)
        .build()
        .unwrap()
}

const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
const ALLOW: LinuxSeccompAction = LinuxSeccompAction::ScmpActAllow;

#[test]
fn an_allow_list_allows_its_calls_and_refuses_the_rest() {
    let filter = Filter::compile(&profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![call(&["read", "write", "no_such_call"], ALLOW, vec![])],
    ))
    .unwrap();
    let p = &filter.program;
    assert_eq!(run(p, NATIVE_ARCH, nr("read"), [0; 6]), RET_ALLOW);
    assert_eq!(run(p, NATIVE_ARCH, nr("write"), [0; 6]), RET_ALLOW);
    assert_eq!(run(p, NATIVE_ARCH, nr("mount"), [0; 6]), EPERM);
    // Another ABI, and numbers past the table.
    assert_eq!(run(p, 0x4000_0003, nr("read"), [0; 6]), EPERM);
    assert_eq!(run(p, NATIVE_ARCH, 100_000, [0; 6]), EPERM);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        run(p, NATIVE_ARCH, X32_SYSCALL_BIT | nr("read"), [0; 6]),
        EPERM
    );
}

#[test]
fn a_deny_list_cannot_be_gone_round_by_another_abi() {
    let filter = Filter::compile(&profile(
        ALLOW,
        vec![call(&["mount"], LinuxSeccompAction::ScmpActErrno, vec![])],
    ))
    .unwrap();
    let p = &filter.program;
    assert_eq!(run(p, NATIVE_ARCH, nr("mount"), [0; 6]), EPERM);
    assert_eq!(run(p, NATIVE_ARCH, nr("read"), [0; 6]), RET_ALLOW);
    assert_eq!(run(p, 0x4000_0003, 21, [0; 6]), EPERM);
}

#[test]
fn every_comparison_matches_unsigned_64_bit_arithmetic() {
    let values = [
        0,
        1,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x7fff_ffff_ffff_ffff,
        u64::MAX,
    ];
    let ops = [
        Op::ScmpCmpEq,
        Op::ScmpCmpNe,
        Op::ScmpCmpLt,
        Op::ScmpCmpLe,
        Op::ScmpCmpGt,
        Op::ScmpCmpGe,
    ];
    for op in ops {
        for &against in &values {
            let filter = Filter::compile(&profile(
                LinuxSeccompAction::ScmpActErrno,
                vec![call(&["read"], ALLOW, vec![arg(2, op, against, None)])],
            ))
            .unwrap();
            for &value in &values {
                let want = match op {
                    Op::ScmpCmpEq => value == against,
                    Op::ScmpCmpNe => value != against,
                    Op::ScmpCmpLt => value < against,
                    Op::ScmpCmpLe => value <= against,
                    Op::ScmpCmpGt => value > against,
                    Op::ScmpCmpGe => value >= against,
                    Op::ScmpCmpMaskedEq => unreachable!(),
                };
                let got = run(
                    &filter.program,
                    NATIVE_ARCH,
                    nr("read"),
                    [0, 0, value, 0, 0, 0],
                );
                assert_eq!(got == RET_ALLOW, want, "{value:#x} {op:?} {against:#x}");
            }
        }
    }
}

#[test]
fn masked_equality_and_per_rule_actions_as_dockers_profile_uses_them() {
    // clone without namespace flags; clone3 answered ENOSYS; personality
    // with one of a few values.
    let namespaces = 0x7e02_0000u64;
    let filter = Filter::compile(&profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![
            call(
                &["clone"],
                ALLOW,
                vec![arg(0, Op::ScmpCmpMaskedEq, namespaces, Some(0))],
            ),
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::ENOSYS as u32)
                .build()
                .unwrap(),
            call(
                &["personality"],
                ALLOW,
                vec![arg(0, Op::ScmpCmpEq, 0, None)],
            ),
            call(
                &["personality"],
                ALLOW,
                vec![arg(0, Op::ScmpCmpEq, 0xffff_ffff, None)],
            ),
        ],
    ))
    .unwrap();
    let p = &filter.program;
    let clone = nr("clone");
    assert_eq!(run(p, NATIVE_ARCH, clone, [0x11, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        run(p, NATIVE_ARCH, clone, [0x2000_0011, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(
        run(p, NATIVE_ARCH, nr("clone3"), [0; 6]),
        RET_ERRNO | libc::ENOSYS as u32
    );
    let personality = nr("personality");
    assert_eq!(run(p, NATIVE_ARCH, personality, [0; 6]), RET_ALLOW);
    assert_eq!(
        run(p, NATIVE_ARCH, personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(run(p, NATIVE_ARCH, personality, [8, 0, 0, 0, 0, 0]), EPERM);
}

#[test]
fn an_int_argument_is_judged_by_its_low_word() {
    // As Hull's default refuses AF_VSOCK: a masked refusal first, then
    // the call allowed; high bits (which the kernel ignores) change nothing.
    let filter = Filter::compile(&profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![
            LinuxSyscallBuilder::default()
                .names(vec!["socket".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::EAFNOSUPPORT as u32)
                .args(vec![arg(0, Op::ScmpCmpMaskedEq, 0xffff_ffff, Some(40))])
                .build()
                .unwrap(),
            call(&["socket"], ALLOW, vec![]),
        ],
    ))
    .unwrap();
    let refused = RET_ERRNO | libc::EAFNOSUPPORT as u32;
    for (family, want) in [(40, refused), (0x1_0000_0028, refused), (2, RET_ALLOW)] {
        let got = run(
            &filter.program,
            NATIVE_ARCH,
            nr("socket"),
            [family, 1, 0, 0, 0, 0],
        );
        assert_eq!(got, want, "{family:#x}");
    }
}

#[test]
fn conditions_on_one_argument_twice_are_alternatives() {
    let filter = Filter::compile(&profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![call(
            &["read"],
            ALLOW,
            vec![
                arg(0, Op::ScmpCmpEq, 1, None),
                arg(0, Op::ScmpCmpEq, 2, None),
            ],
        )],
    ))
    .unwrap();
    for (fd, want) in [(1, RET_ALLOW), (2, RET_ALLOW), (3, EPERM)] {
        assert_eq!(
            run(
                &filter.program,
                NATIVE_ARCH,
                nr("read"),
                [fd, 0, 0, 0, 0, 0]
            ),
            want
        );
    }
}

#[test]
fn every_known_call_with_a_condition_still_fits() {
    let names: Vec<String> = syscalls::Sysno::iter()
        .map(|s| s.name().to_string())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let filter = Filter::compile(&profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![call(&names, ALLOW, vec![arg(1, Op::ScmpCmpNe, 7, None)])],
    ))
    .unwrap();
    assert!(filter.program.len() <= MAX_INSTRUCTIONS);
    for call in syscalls::Sysno::iter() {
        let nr = call.id() as u32;
        assert_eq!(
            run(&filter.program, NATIVE_ARCH, nr, [0; 6]),
            RET_ALLOW,
            "{call}"
        );
        assert_eq!(
            run(&filter.program, NATIVE_ARCH, nr, [0, 7, 0, 0, 0, 0]),
            EPERM,
            "{call}"
        );
    }
}

#[test]
fn what_cannot_be_applied_is_an_error() {
    let notify = profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![call(&["read"], LinuxSeccompAction::ScmpActNotify, vec![])],
    );
    assert!(Filter::compile(&notify).is_err());
    let bad_index = profile(
        LinuxSeccompAction::ScmpActErrno,
        vec![call(&["read"], ALLOW, vec![arg(6, Op::ScmpCmpEq, 0, None)])],
    );
    assert!(Filter::compile(&bad_index).is_err());
}

#[test]
fn the_wire_form_is_compact_and_round_trips() {
    let filter = Filter {
        program: vec![Instruction {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: RET_ALLOW,
        }],
        flags: FILTER_FLAG_LOG,
    };
    let text = serde_json::to_string(&filter).unwrap();
    assert_eq!(text, r#"{"program":[[6,0,0,2147418112]],"flags":2}"#);
    assert_eq!(serde_json::from_str::<Filter>(&text).unwrap(), filter);
}
