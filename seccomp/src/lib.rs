//! A container's seccomp filter: the OCI spec's `linux.seccomp`, compiled
//! to classic BPF. Hull's host compiles it (natively, before the guest
//! needs it) and hull-agent loads the result in the container's child just
//! before it runs the container's program, as runc and crun do.
//!
//! The program checks the architecture first: only this machine's native
//! system calls are judged by the profile's rules; 32-bit and x32 calls get
//! its refusal (so they cannot go round a profile that denies a few calls
//! and allows the rest). Then a binary search on the call's number leads to
//! that call's rules, in the profile's order; the first whose argument
//! conditions hold decides, and the profile's default action decides the
//! rest. Names this machine's table lacks are skipped, as runc skips what
//! libseccomp does not know. (Host and guest share the architecture: KVM
//! runs guests of its own.)
//!
//! Hand-written rather than `seccompiler`: OCI profiles give each rule its
//! own action (Docker's returns ENOSYS for `clone3` and allows the rest),
//! which `seccompiler`'s filters, with one action for every match, do not
//! express; and the agent is a static binary without libseccomp.

#![deny(missing_docs)]

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
};
use oci_spec::runtime::{LinuxSeccompOperator as Op, LinuxSyscall};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

mod load;
pub use load::Loadable;

/// Why a profile cannot be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeccompError {
    /// `SCMP_ACT_NOTIFY` (and its listener) needs a supervisor Hull lacks.
    #[error("seccomp: SCMP_ACT_NOTIFY is not supported")]
    Notify,
    /// A condition on a seventh argument.
    #[error("seccomp: argument index {0} is past the sixth")]
    ArgumentIndex(u32),
    /// More rules for one call than [`MAX_RULES_PER_CALL`].
    #[error("seccomp: more than {MAX_RULES_PER_CALL} rules for {0}")]
    TooManyRules(String),
    /// A program longer than the kernel takes.
    #[error("seccomp: the profile needs {0} BPF instructions, more than the kernel's {MAX_INSTRUCTIONS}")]
    TooLong(usize),
    /// A jump the assembler could not place (a fault of this crate's).
    #[error("seccomp: {0}")]
    Assembly(&'static str),
    /// A compiled program the kernel would not load.
    #[error("seccomp: {0}")]
    Unloadable(String),
}

type Result<T, E = SeccompError> = std::result::Result<T, E>;

/// The kernel's limit on a filter's length (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;
/// Rules one system call may have (profiles list ioctl requests one by
/// one; the program's length bounds the rest).
pub const MAX_RULES_PER_CALL: usize = 256;

// Classic BPF opcodes (linux/bpf_common.h): class | size/op | mode/source.
/// `BPF_LD | BPF_W | BPF_ABS` (`BPF_LD` and `BPF_W` are 0).
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K` (`BPF_K` is 0).
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
/// `BPF_JMP | BPF_JA`.
const BPF_JMP_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JEQ: u16 = 0x05 | 0x10;
/// `BPF_JMP | BPF_JGT | BPF_K`.
const BPF_JGT: u16 = 0x05 | 0x20;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const BPF_JGE: u16 = 0x05 | 0x30;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;

// seccomp's return values (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xc000_00b7;
/// x32 calls share x86_64's audit arch and set this bit in the number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `SECCOMP_FILTER_FLAG_LOG`.
pub const FILTER_FLAG_LOG: u32 = 2;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
pub const FILTER_FLAG_SPEC_ALLOW: u32 = 4;
/// `EPERM`, the errno of actions that give none.
const EPERM: u32 = 1;

/// One classic BPF instruction (`struct sock_filter`). On the wire, the
/// array `[code, jt, jf, k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u16, u8, u8, u32)", into = "(u16, u8, u8, u32)")]
pub struct Instruction {
    /// The opcode.
    pub code: u16,
    /// Where a true condition jumps (instructions skipped).
    pub jt: u8,
    /// Where a false condition jumps.
    pub jf: u8,
    /// The operand.
    pub k: u32,
}

impl From<(u16, u8, u8, u32)> for Instruction {
    fn from((code, jt, jf, k): (u16, u8, u8, u32)) -> Self {
        Self { code, jt, jf, k }
    }
}

impl From<Instruction> for (u16, u8, u8, u32) {
    fn from(i: Instruction) -> Self {
        (i.code, i.jt, i.jf, i.k)
    }
}

/// A compiled filter: the program and `seccomp(2)`'s flags for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// The program, at most [`MAX_INSTRUCTIONS`] long.
    pub program: Vec<Instruction>,
    /// [`FILTER_FLAG_LOG`], [`FILTER_FLAG_SPEC_ALLOW`].
    pub flags: u32,
}

impl Filter {
    /// Compiles `profile`.
    pub fn compile(profile: &LinuxSeccomp) -> Result<Self> {
        if profile.listener_path().is_some() {
            return Err(SeccompError::Notify);
        }
        let errno = profile.default_errno_ret();
        let default = action(profile.default_action(), errno)?;
        let mut flags = 0;
        for flag in profile.flags().iter().flatten() {
            flags |= match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => FILTER_FLAG_LOG,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FILTER_FLAG_SPEC_ALLOW,
                // The child is one thread: nothing to synchronise.
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            };
        }
        let calls = rules(profile.syscalls().as_deref().unwrap_or_default())?;
        let program = generate(default, &calls)?;
        Ok(Self { program, flags })
    }
}

/// The return value of an OCI action.
fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<u32> {
    let data = |default: u32| errno_ret.unwrap_or(default) & 0xffff;
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data(EPERM),
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data(EPERM),
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => return Err(SeccompError::Notify),
    })
}

/// One rule: all its conditions hold → `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    conditions: Vec<LinuxSeccompArg>,
    action: u32,
}

/// The profile's rules by system call number, each call's in the
/// profile's order.
fn rules(syscalls: &[LinuxSyscall]) -> Result<BTreeMap<u32, Vec<Rule>>> {
    let mut calls: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
    for entry in syscalls {
        let action = action(entry.action(), entry.errno_ret())?;
        let args = entry.args().as_deref().unwrap_or_default();
        for arg in args {
            if arg.index() > 5 {
                return Err(SeccompError::ArgumentIndex(arg.index() as u32));
            }
        }
        // As runc: conditions on one argument twice are alternatives (a
        // rule each); otherwise they all have to hold.
        let mut seen = HashSet::new();
        let alternatives = args.iter().any(|arg| !seen.insert(arg.index()));
        let entry_rules: Vec<Rule> = if alternatives {
            args.iter()
                .map(|arg| Rule {
                    conditions: vec![*arg],
                    action,
                })
                .collect()
        } else {
            vec![Rule {
                conditions: args.to_vec(),
                action,
            }]
        };
        for name in entry.names() {
            let Ok(call) = syscalls::Sysno::from_str(name) else {
                tracing::debug!("seccomp: skipping {name}, unknown to this kernel");
                continue;
            };
            let list = calls.entry(call.id() as u32).or_default();
            list.extend(entry_rules.iter().cloned());
            if list.len() > MAX_RULES_PER_CALL {
                return Err(SeccompError::TooManyRules(name.clone()));
            }
        }
    }
    Ok(calls)
}

/// A jump target: a label, placed with [`Program::mark`].
type Label = usize;

enum Insn {
    Stmt {
        code: u16,
        k: u32,
    },
    /// A conditional jump; `None` is the next instruction.
    Jump {
        code: u16,
        k: u32,
        jt: Option<Label>,
        jf: Option<Label>,
    },
    /// An unconditional jump, which may go far.
    Ja(Label),
    Mark(Label),
}

/// A program with symbolic jumps. Conditional jumps reach 255 instructions
/// at most, so they only ever jump within a rule or over one `ja`; far
/// targets are reached with `ja`.
#[derive(Default)]
struct Program {
    insns: Vec<Insn>,
    labels: usize,
}

impl Program {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }
    fn mark(&mut self, label: Label) {
        self.insns.push(Insn::Mark(label));
    }
    fn load(&mut self, offset: u32) {
        self.insns.push(Insn::Stmt {
            code: BPF_LD_W_ABS,
            k: offset,
        });
    }
    fn and(&mut self, mask: u32) {
        self.insns.push(Insn::Stmt {
            code: BPF_ALU_AND_K,
            k: mask,
        });
    }
    fn ret(&mut self, value: u32) {
        self.insns.push(Insn::Stmt {
            code: BPF_RET_K,
            k: value,
        });
    }
    fn jump(&mut self, code: u16, k: u32, jt: Option<Label>, jf: Option<Label>) {
        self.insns.push(Insn::Jump { code, k, jt, jf });
    }
    fn ja(&mut self, label: Label) {
        self.insns.push(Insn::Ja(label));
    }

    /// Resolves the labels.
    fn assemble(self) -> Result<Vec<Instruction>> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for insn in &self.insns {
            match insn {
                Insn::Mark(label) => at[*label] = pc,
                _ => pc += 1,
            }
        }
        if pc > MAX_INSTRUCTIONS {
            return Err(SeccompError::TooLong(pc));
        }
        let offset = |pc: usize, label: Option<Label>| -> Result<usize> {
            let Some(label) = label else { return Ok(0) };
            at.get(label)
                .and_then(|&target| target.checked_sub(pc + 1))
                .ok_or(SeccompError::Assembly(
                    "a jump to an unplaced or earlier label",
                ))
        };
        let mut out = Vec::with_capacity(pc);
        for insn in &self.insns {
            let pc = out.len();
            let (code, jt, jf, k) = match *insn {
                Insn::Mark(_) => continue,
                Insn::Stmt { code, k } => (code, 0, 0, k),
                Insn::Ja(label) => (BPF_JMP_JA, 0, 0, offset(pc, Some(label))? as u32),
                Insn::Jump { code, k, jt, jf } => {
                    let short = |label| -> Result<u8> {
                        u8::try_from(offset(pc, label)?)
                            .map_err(|_| SeccompError::Assembly("a conditional jump too far"))
                    };
                    (code, short(jt)?, short(jf)?, k)
                }
            };
            out.push(Instruction { code, jt, jf, k });
        }
        Ok(out)
    }
}

/// The whole program for `calls`, `default` for the rest.
fn generate(default: u32, calls: &BTreeMap<u32, Vec<Rule>>) -> Result<Vec<Instruction>> {
    let mut p = Program::default();
    let foreign = p.label();
    let fallback = p.label();
    // Calls of another ABI are refused, never allowed: with a profile that
    // allows by default, they would go round its denials.
    let refusal = if matches!(default, RET_ALLOW | RET_LOG) {
        RET_ERRNO | EPERM
    } else {
        default
    };
    p.load(ARCH);
    let native = p.label();
    p.jump(BPF_JEQ, NATIVE_ARCH, Some(native), None);
    p.ja(foreign);
    p.mark(native);
    p.load(NR);
    #[cfg(target_arch = "x86_64")]
    {
        let not_x32 = p.label();
        p.jump(BPF_JGE, X32_SYSCALL_BIT, None, Some(not_x32));
        p.ja(foreign);
        p.mark(not_x32);
    }

    // A call with one unconditional rule goes straight to a shared return.
    let mut returns: BTreeMap<u32, Label> = BTreeMap::new();
    let mut bodies = Vec::new();
    let mut targets = Vec::with_capacity(calls.len());
    for (&nr, rules) in calls {
        let target = match rules.first() {
            Some(first) if first.conditions.is_empty() => {
                *returns.entry(first.action).or_insert_with(|| p.label())
            }
            _ => {
                let label = p.label();
                bodies.push((label, rules));
                label
            }
        };
        targets.push((nr, target));
    }
    search(&mut p, &targets, fallback);
    for (label, rules) in bodies {
        p.mark(label);
        for rule in rules {
            let next = p.label();
            for condition in &rule.conditions {
                compare(&mut p, condition, next);
            }
            p.ret(rule.action);
            p.mark(next);
        }
        p.ret(default);
    }
    for (value, label) in returns {
        p.mark(label);
        p.ret(value);
    }
    p.mark(foreign);
    p.ret(refusal);
    p.mark(fallback);
    p.ret(default);
    p.assemble()
}

/// A binary search on the number in the accumulator over `targets`
/// (sorted); numbers not there jump to `missing`.
fn search(p: &mut Program, targets: &[(u32, Label)], missing: Label) {
    if targets.len() <= 4 {
        for &(nr, target) in targets {
            let other = p.label();
            p.jump(BPF_JEQ, nr, None, Some(other));
            p.ja(target);
            p.mark(other);
        }
        p.ja(missing);
        return;
    }
    let (low, high) = targets.split_at(targets.len() / 2);
    let upper = p.label();
    let lower = p.label();
    p.jump(BPF_JGE, high[0].0, Some(upper), None);
    p.ja(lower);
    p.mark(upper);
    search(p, high, missing);
    p.mark(lower);
    search(p, low, missing);
}

/// Jumps to `fail` unless `condition` holds of its 64-bit argument
/// (compared as libseccomp does: unsigned, high word first).
fn compare(p: &mut Program, condition: &LinuxSeccompArg, fail: Label) {
    let low = ARGS + 8 * condition.index() as u32;
    let high = low + 4;
    let split = |value: u64| ((value >> 32) as u32, value as u32);
    let (value_high, value_low) = split(condition.value());
    let pass = p.label();
    match condition.op() {
        Op::ScmpCmpEq => {
            p.load(high);
            p.jump(BPF_JEQ, value_high, None, Some(fail));
            p.load(low);
            p.jump(BPF_JEQ, value_low, None, Some(fail));
        }
        Op::ScmpCmpNe => {
            p.load(high);
            p.jump(BPF_JEQ, value_high, None, Some(pass));
            p.load(low);
            p.jump(BPF_JEQ, value_low, Some(fail), None);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            p.load(high);
            p.jump(BPF_JGT, value_high, Some(pass), None);
            p.jump(BPF_JEQ, value_high, None, Some(fail));
            p.load(low);
            let code = if condition.op() == Op::ScmpCmpGt {
                BPF_JGT
            } else {
                BPF_JGE
            };
            p.jump(code, value_low, None, Some(fail));
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            p.load(high);
            p.jump(BPF_JGT, value_high, Some(fail), None);
            p.jump(BPF_JEQ, value_high, None, Some(pass));
            p.load(low);
            let code = if condition.op() == Op::ScmpCmpLt {
                BPF_JGE
            } else {
                BPF_JGT
            };
            p.jump(code, value_low, Some(fail), None);
        }
        Op::ScmpCmpMaskedEq => {
            let (want_high, want_low) = split(condition.value_two().unwrap_or(0));
            p.load(high);
            p.and(value_high);
            p.jump(BPF_JEQ, want_high, None, Some(fail));
            p.load(low);
            p.and(value_low);
            p.jump(BPF_JEQ, want_low, None, Some(fail));
        }
    }
    p.mark(pass);
}

#[cfg(test)]
mod tests;
