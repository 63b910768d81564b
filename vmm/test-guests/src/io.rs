//! Port I/O and serial output (COM1, polled, no interrupts).

const COM1: u16 = 0x3f8;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects in this guest; every port used
    // is a device the VMM emulates or ignores.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
    };
}

/// Writes bytes to the serial port. The emulated UART's transmitter is
/// always ready, so there is no need to poll the line status (each poll
/// would cost an exit).
pub fn print(bytes: &[u8]) {
    for b in bytes {
        outb(COM1, *b);
    }
}

/// Writes bytes and a newline.
pub fn println(bytes: &[u8]) {
    print(bytes);
    outb(COM1, b'\n');
}

/// Writes `0x` and the hexadecimal digits of `value`.
pub fn print_hex(value: u64) {
    let mut digits = [0u8; 18];
    digits[0] = b'0';
    digits[1] = b'x';
    let mut len = 2;
    let mut started = false;
    for shift in (0..16).rev() {
        let nibble = ((value >> (shift * 4)) & 0xf) as u8;
        if nibble != 0 || started || shift == 0 {
            started = true;
            digits[len] = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
            len += 1;
        }
    }
    print(&digits[..len]);
}
