# Entry points of hull-test-guest (AT&T syntax).
#
# - pvh_entry: PVH, 32-bit protected mode, paging off, %ebx = hvm_start_info.
# - _start:    Linux 64-bit boot protocol, long mode, %rsi = boot_params.
# - ap_trampoline: copied to 0x10000 and started by INIT/SIPI in real mode.
#
# Every path writes the boot timer port (0x440) first, switches to this
# image's GDT and page tables (identity map of 4 GiB, so the local APIC at
# 0xfee00000 is reachable) and calls guest_main(info, protocol).

.set BOOT_TIMER_PORT, 0x440
.set MSR_EFER, 0xc0000080
.set EFER_LME, 0x100
.set CR4_PAE, 0x20
.set CR0_PE_PG, 0x80000001
.set AP_TRAMPOLINE_ADDR, 0x10000

# --- PVH note: XEN_ELFNOTE_PHYS32_ENTRY (18), 8-byte descriptor ---------------
.section .note.pvh, "a"
.balign 4
.long 4
.long 8
.long 18
.asciz "Xen"
.quad pvh_entry

# --- 32-bit PVH entry ----------------------------------------------------------
.section .text.entry, "ax"
.code32
.globl pvh_entry
pvh_entry:
    cli
    mov $BOOT_TIMER_PORT, %dx
    out %al, %dx
    mov %ebx, %esi
    lgdt gdt64_ptr
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $CR0_PE_PG, %eax
    mov %eax, %cr0
    ljmp $0x08, $pvh_long

.code64
pvh_long:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $stack_top, %rsp
    mov %esi, %edi
    mov $1, %esi
    call guest_main
1:  cli
    hlt
    jmp 1b

# --- 64-bit Linux boot protocol entry ----------------------------------------
# At image offset 0x200 (link.ld), where a bzImage's 64-bit entry is, so the
# same code also boots when the image is wrapped as a bzImage.
.section .text.entry64, "ax"
.globl _start
_start:
    cli
    mov $BOOT_TIMER_PORT, %dx
    out %al, %dx
    mov %rsi, %rdi
    lgdt gdt64_ptr
    mov $pml4, %eax
    mov %rax, %cr3
    mov $stack_top, %rsp
    pushq $0x08
    pushq $1f
    lretq
1:  mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %esi, %esi
    call guest_main
2:  cli
    hlt
    jmp 2b

# --- Application processors ---------------------------------------------------
# Real mode at AP_TRAMPOLINE_ADDR (CS = 0x1000, IP = 0): straight to long mode.
.globl ap_trampoline_start
.globl ap_trampoline_end
.code16
ap_trampoline_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    lgdtl (ap_gdt_ptr - ap_trampoline_start)
    mov $CR4_PAE, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov $CR0_PE_PG, %eax
    mov %eax, %cr0
    ljmpl $0x08, $ap_long
.balign 8
ap_gdt_ptr:
    .word gdt64_end - gdt64 - 1
    .long gdt64
ap_trampoline_end:

.code64
ap_long:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $1, %eax
    cpuid
    shr $24, %ebx
    lock bts %ebx, ap_mask(%rip)
    lock incl ap_count(%rip)
3:  cli
    hlt
    jmp 3b

# --- Data ------------------------------------------------------------------------
.section .rodata
.balign 8
gdt64:
    .quad 0
    .quad 0x00af9a000000ffff    # 0x08: 64-bit code
    .quad 0x00cf92000000ffff    # 0x10: flat data
gdt64_end:
.balign 8
gdt64_ptr:
    .word gdt64_end - gdt64 - 1
    .quad gdt64

.section .data.pagetables, "aw"
.balign 4096
pml4:
    .quad pdpt + 0x3
    .fill 511, 8, 0
pdpt:
    .quad pd0 + 0x3
    .quad pd0 + 0x1000 + 0x3
    .quad pd0 + 0x2000 + 0x3
    .quad pd0 + 0x3000 + 0x3
    .fill 508, 8, 0
pd0:
    .set page, 0
    .rept 2048
    .quad (page << 21) | 0x83
    .set page, page + 1
    .endr

.section .data
.balign 8
.globl ap_count
ap_count:
    .long 0
.balign 8
.globl ap_mask
ap_mask:
    .quad 0

.section .bss
.balign 16
stack:
    .skip 262144
stack_top:
