//! Memory services for virtio-drivers and `alloc`: bump allocators over
//! static arenas (the guest is short-lived, nothing is ever freed), and
//! identity physical addressing (entry.s maps 4 GiB 1:1).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

#[repr(C, align(4096))]
struct Arena<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: handed out in disjoint pieces by the atomic bump pointers below.
unsafe impl<const N: usize> Sync for Arena<N> {}

// 2 MiB: the throughput modes (perf.rs) hold 64 KiB vsock rx buffers.
const HEAP_SIZE: usize = 2 << 20;
const DMA_SIZE: usize = 1 << 20;
static HEAP: Arena<HEAP_SIZE> = Arena(UnsafeCell::new([0; HEAP_SIZE]));
static DMA: Arena<DMA_SIZE> = Arena(UnsafeCell::new([0; DMA_SIZE]));
static HEAP_NEXT: AtomicUsize = AtomicUsize::new(0);
static DMA_NEXT: AtomicUsize = AtomicUsize::new(0);

fn bump(next: &AtomicUsize, base: usize, capacity: usize, size: usize, align: usize) -> *mut u8 {
    let mut current = next.load(Ordering::Relaxed);
    loop {
        let start = (base + current).next_multiple_of(align) - base;
        let end = start + size;
        if end > capacity {
            return core::ptr::null_mut();
        }
        match next.compare_exchange(current, end, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return (base + start) as *mut u8,
            Err(actual) => current = actual,
        }
    }
}

/// The global allocator: a bump allocator over `HEAP`.
pub struct BumpAllocator;

// SAFETY: returns disjoint, suitably aligned pieces of a static arena, or
// null when it is exhausted.
unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(
            &HEAP_NEXT,
            HEAP.0.get() as usize,
            HEAP_SIZE,
            layout.size(),
            layout.align(),
        )
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: BumpAllocator = BumpAllocator;

/// virtio-drivers' platform layer.
pub struct HullHal;

// SAFETY: DMA pages are zeroed (static arena, never reused), physically
// contiguous and identity-mapped; shared buffers are their own physical
// addresses.
unsafe impl Hal for HullHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let ptr = bump(
            &DMA_NEXT,
            DMA.0.get() as usize,
            DMA_SIZE,
            pages * PAGE_SIZE,
            PAGE_SIZE,
        );
        match NonNull::new(ptr) {
            Some(ptr) => (ptr.as_ptr() as PhysAddr, ptr),
            None => panic!("out of DMA memory"),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("MMIO at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
