// The syscall-exit program of the crt shim (DESIGN.md, decision 6).
//
// Seccomp user notification never shows a syscall's result: the notify loop
// answers CONTINUE and the kernel runs the syscall afterwards. Just before
// answering, the loop arms the slot of the thread in `slots` (a memory map it
// shares with this program) with the record's sequence number, the syscall
// number and what to read at the exit. Here, at the syscall's exit, a thread
// whose slot is armed for this very syscall sends its result, its duration
// and that memory to the shim through `exits`, and disarms the slot.
//
// Every other thread of the node pays one array lookup and a compare.
//
// Licence: this file is dual-licensed (MIT or GPL-2.0) so that the kernel
// lets it call bpf_probe_read_user, which is GPL-only.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Keep in step with shim/src/trace/exits.rs.
#define SLOTS 2048
#define OUT_MAX 256
#define SOCKADDR_MAX 128

#define MODE_NONE 0
#define MODE_RET_BYTES 1
#define MODE_FIXED 2
#define MODE_SOCKADDR 3

#define STATE_IDLE 0
#define STATE_ARMED 1

#define EXIT_OUT_UNREADABLE 1

struct slot {
	__u32 tid;
	__u32 seq;
	__u32 nr;
	__u32 state;
	__u64 armed_ns;
	__u64 out_addr;
	__u64 aux_addr;
	__u32 out_mode;
	__u32 out_max;
};

struct exit_event {
	__u32 tid;
	__u32 seq;
	__u32 nr;
	__u16 out_len;
	__u16 flags;
	__s64 ret;
	__u64 duration_ns;
	__u8 out[OUT_MAX + 8];
};

#define EVENT_HEADER 32

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, struct slot);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} exits SEC(".maps");

// Results that did not fit in `exits`.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

// Room to build one event (too big for the BPF stack).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exit_event);
} scratch SEC(".maps");

// struct pt_regs on x86_64: orig_ax is the 16th word.
#define PT_REGS_ORIG_AX 120

SEC("raw_tracepoint/sys_exit")
int crt_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 key = tid & (SLOTS - 1);
	struct slot *s = bpf_map_lookup_elem(&slots, &key);
	if (!s || s->tid != tid || s->state != STATE_ARMED)
		return 0;

	// Only the syscall the slot was armed for: a thread whose notification
	// was withdrawn (a signal) may exit other syscalls first.
	__u64 nr = 0;
	bpf_probe_read_kernel(&nr, sizeof(nr), (void *)(ctx->args[0] + PT_REGS_ORIG_AX));
	if ((__u32)nr != s->nr)
		return 0;

	__u32 zero = 0;
	struct exit_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;
	__s64 ret = (__s64)ctx->args[1];
	__u64 now = bpf_ktime_get_ns();
	ev->tid = tid;
	ev->seq = s->seq;
	ev->nr = s->nr;
	ev->flags = 0;
	ev->ret = ret;
	ev->duration_ns = now > s->armed_ns ? now - s->armed_ns : 0;

	__u32 len = 0;
	__u32 max = s->out_max;
	if (max > OUT_MAX)
		max = OUT_MAX;
	__u64 addr = s->out_addr;
	switch (s->out_mode) {
	case MODE_RET_BYTES:
		if (ret > 0)
			len = ret < (__s64)max ? (__u32)ret : max;
		break;
	case MODE_FIXED:
		if (ret >= 0)
			len = max;
		break;
	case MODE_SOCKADDR:
		if (ret >= 0) {
			__u32 socklen = 0;
			if (bpf_probe_read_user(&socklen, sizeof(socklen), (void *)s->aux_addr) == 0) {
				__builtin_memcpy(ev->out, &socklen, 4);
				len = socklen < SOCKADDR_MAX ? socklen : SOCKADDR_MAX;
				if (len && addr && bpf_probe_read_user(ev->out + 4, len & (OUT_MAX - 1), (void *)addr) != 0) {
					ev->flags |= EXIT_OUT_UNREADABLE;
					len = 0;
				}
				len += 4;
			} else {
				ev->flags |= EXIT_OUT_UNREADABLE;
			}
		}
		addr = 0;
		break;
	default:
		break;
	}
	if (addr && len) {
		len &= (OUT_MAX * 2 - 1);
		if (len > OUT_MAX)
			len = OUT_MAX;
		if (bpf_probe_read_user(ev->out, len, (void *)addr) != 0) {
			ev->flags |= EXIT_OUT_UNREADABLE;
			len = 0;
		}
	}
	__u32 size = EVENT_HEADER + len;
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	ev->out_len = size - EVENT_HEADER;

	s->state = STATE_IDLE;

	// Wake the reader only when the buffer is filling up: it also drains
	// on a short timer, and a wake-up per syscall would cost more than the
	// syscall.
	__u64 avail = bpf_ringbuf_query(&exits, BPF_RB_AVAIL_DATA);
	__u64 flags = avail > 64 * 1024 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&exits, ev, size, flags) != 0) {
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
