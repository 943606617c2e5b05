// SPDX-License-Identifier: MIT
/*
 * realkvm VMM: a tiny static aarch64 program, run as /init of an initramfs on
 * a real KVM/arm64 host, that drives one-vCPU guests through /dev/kvm and
 * prints what each scenario observes, one value per line:
 *
 *     RK <scenario> <NN>.<op>.<argument> <value>
 *
 * op is one of
 *     guest_read.REG          the guest ran MRS; value is what it read, or
 *                             undef:<ESR_EL1> when it took an exception
 *     guest_write.REG=VAL     the guest ran MSR; value "done", or undef:<ESR_EL1>
 *     exit.run                KVM_RUN returned; value is the exit reason
 *     get_one_reg.REG         KVM_GET_ONE_REG; value in hex, or the errno name
 *     set_one_reg.REG=VAL     KVM_SET_ONE_REG; "ok" or the errno name
 *     reg_list.REG            KVM_GET_REG_LIST membership: listed / unlisted
 *     vcpu_init.again         a second KVM_ARM_VCPU_INIT; ok or errno
 *     vm_close.all            the vCPU and VM file descriptors were closed
 *     host_oslsr.WHEN         the host PE's own OSLSR_EL1, read through the
 *                             read-only debugfs probe realkvm_oslsr
 * and "RKMETA <key> <value>" lines for the kernel release and timings.
 *
 * Each scenario creates a fresh VM.  A guest's results are stored by the guest
 * into a results area in guest RAM (value, then the ESR its exception handler
 * caught, 0 when none); the guest leaves with an MMIO write to an unbacked
 * address, which KVM reports as KVM_EXIT_MMIO.  Guest code is hand-encoded
 * here.  Boot the host with one CPU; the VMM also pins itself to CPU 0, so the
 * probe reads the PE the vCPU ran on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <linux/kvm.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define RAM_BASE   0x40000000ull
#define RAM_SIZE   0x10000ull
#define CODE_OFF   0x1000ull        /* guest code starts here */
#define VEC_OFF    0x0800ull        /* VBAR_EL1 (2 KiB aligned) */
#define RES_OFF    0x8000ull        /* results area: 16 bytes per op */
#define MMIO_BASE  0x50000000ull    /* unbacked: stores here exit to us */

/* ------------------------------------------------------------ registers */

struct sysreg { const char *name; int op0, op1, crn, crm, op2; };

static const struct sysreg REGS[] = {
	{ "OSLAR_EL1",       2, 0,  1, 0, 4 },
	{ "OSLSR_EL1",       2, 0,  1, 1, 4 },
	{ "OSDLR_EL1",       2, 0,  1, 3, 4 },
	{ "MDSCR_EL1",       2, 0,  0, 2, 2 },
	{ "TTBR1_EL1",       3, 0,  2, 0, 1 },
	{ "ESR_EL1",         3, 0,  5, 2, 0 },
	{ "ID_AA64DFR0_EL1", 3, 0,  0, 5, 0 },
	{ "VBAR_EL1",        3, 0, 12, 0, 0 },
	{ "ELR_EL1",         3, 0,  4, 0, 1 },
	{ "CSSELR_EL1",      3, 2,  0, 0, 0 },
};

static const struct sysreg *reg(const char *name)
{
	for (size_t i = 0; i < sizeof(REGS) / sizeof(REGS[0]); i++)
		if (!strcmp(REGS[i].name, name))
			return &REGS[i];
	fprintf(stderr, "vmm: unknown register %s\n", name);
	exit(1);
}

static uint32_t sysreg_field(const struct sysreg *r)
{
	return r->op0 << 19 | r->op1 << 16 | r->crn << 12 | r->crm << 8 | r->op2 << 5;
}

static uint64_t reg_id(const struct sysreg *r)
{
	return 0x6030000000130000ull | (uint64_t)r->op0 << 14 | r->op1 << 11 |
	       r->crn << 7 | r->crm << 3 | r->op2;
}

static uint64_t pc_id(void)
{
	return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
	       (offsetof(struct kvm_regs, regs.pc) / 4);
}

/* ------------------------------------------------------------ encodings */

static uint32_t MSR(const char *r, int rt) { return 0xD5000000u | sysreg_field(reg(r)) | rt; }
static uint32_t MRS(int rt, const char *r) { return 0xD5200000u | sysreg_field(reg(r)) | rt; }
static uint32_t MOVZ(int rd, uint16_t imm, int hw) { return 0xD2800000u | hw << 21 | (uint32_t)imm << 5 | rd; }
static uint32_t MOVK(int rd, uint16_t imm, int hw) { return 0xF2800000u | hw << 21 | (uint32_t)imm << 5 | rd; }
static uint32_t STR(int rt, int rn, unsigned off) { return 0xF9000000u | (off / 8) << 10 | rn << 5 | rt; }
static uint32_t ADDI(int rd, int rn, unsigned imm) { return 0x91000000u | imm << 10 | rn << 5 | rd; }
#define ISB  0xD5033FDFu
#define NOP  0xD503201Fu
#define ERET 0xD69F03E0u
#define BSELF 0x14000000u

/* ------------------------------------------------------------ state */

struct vm {
	int kvm, vmfd, vcpufd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
	uint32_t *code;
	unsigned ncode;              /* words emitted */
	unsigned nops;               /* guest ops emitted (result slots) */
	unsigned printed;            /* guest ops already reported */
	struct { char step[64]; int is_read; int is_exit; } op[64];
};

static const char *scn;          /* current scenario name */
static unsigned seq;             /* step number within the scenario */

static void row(const char *step, const char *fmt, ...)
{
	char val[96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	printf("RK %s %02u.%s %s\n", scn, seq++, step, val);
	fflush(stdout);
}

static const char *errname(int e)
{
	static char buf[16];

	switch (e) {
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EPERM:  return "EPERM";
	case EBUSY:  return "EBUSY";
	case E2BIG:  return "E2BIG";
	case EFAULT: return "EFAULT";
	case ENOEXEC: return "ENOEXEC";
	}
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

static void die(const char *what)
{
	printf("RKMETA error %s: %s\n", what, strerror(errno));
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	exit(1);
}

/* ------------------------------------------------------------ host probe */

static void probe(const char *when)
{
	char buf[128], step[64];
	unsigned long long v = 0;
	int fd = open("/dbg/realkvm_oslsr", O_RDONLY);
	ssize_t n;
	char *p;

	snprintf(step, sizeof(step), "host_oslsr.%s", when);
	if (fd < 0) {
		row(step, "%s", errname(errno));
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	p = strstr(buf, "oslsr_el1=");
	if (!p) {
		row(step, "unreadable");
		return;
	}
	v = strtoull(p + 10, NULL, 16);
	row(step, "0x%llx", v);
}

/* ------------------------------------------------------------ KVM */

static int one_reg(struct vm *vm, unsigned long ioc, uint64_t id, uint64_t *val)
{
	struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)val };

	return ioctl(vm->vcpufd, ioc, &r) ? errno : 0;
}

static void set_core(struct vm *vm, uint64_t id, uint64_t v)
{
	if (one_reg(vm, KVM_SET_ONE_REG, id, &v))
		die("set core reg");
}

static int vcpu_init(struct vm *vm)
{
	struct kvm_vcpu_init init;

	if (ioctl(vm->vmfd, KVM_ARM_PREFERRED_TARGET, &init))
		die("KVM_ARM_PREFERRED_TARGET");
	memset(init.features, 0, sizeof(init.features));
	return ioctl(vm->vcpufd, KVM_ARM_VCPU_INIT, &init) ? errno : 0;
}

static void emit(struct vm *vm, uint32_t insn)
{
	vm->code[vm->ncode++] = insn;
}

static void mov64(struct vm *vm, int rd, uint64_t v)
{
	emit(vm, MOVZ(rd, v & 0xFFFF, 0));
	for (int hw = 1; hw < 4; hw++)
		if ((v >> (16 * hw)) & 0xFFFF)
			emit(vm, MOVK(rd, (v >> (16 * hw)) & 0xFFFF, hw));
}

/* Start a code segment at the current cursor: x27 = results, x28 = MMIO,
 * VBAR_EL1 = our vectors.  Sets the vCPU's PC there. */
static void segment(struct vm *vm)
{
	uint64_t pc = RAM_BASE + CODE_OFF + 4ull * vm->ncode;

	/* KVM completes the previous MMIO exit at the next KVM_RUN by stepping
	 * over one instruction, even after a new PC was set (and after a second
	 * KVM_ARM_VCPU_INIT): start every segment with a NOP it may skip. */
	emit(vm, NOP);
	mov64(vm, 27, RAM_BASE + RES_OFF);
	mov64(vm, 28, MMIO_BASE);
	mov64(vm, 9, RAM_BASE + VEC_OFF);
	emit(vm, MSR("VBAR_EL1", 9));
	emit(vm, ISB);
	set_core(vm, pc_id(), pc);
}

static void g_read(struct vm *vm, const char *r)
{
	unsigned i = vm->nops++;

	emit(vm, MOVZ(10, 0, 0));
	emit(vm, MOVZ(1, 0, 0));
	emit(vm, MRS(1, r));
	emit(vm, STR(1, 27, 16 * i));
	emit(vm, STR(10, 27, 16 * i + 8));
	snprintf(vm->op[i].step, sizeof(vm->op[i].step), "guest_read.%s", r);
	vm->op[i].is_read = 1;
}

static void g_write(struct vm *vm, const char *r, uint64_t v)
{
	unsigned i = vm->nops++;

	emit(vm, MOVZ(10, 0, 0));
	mov64(vm, 0, v);
	emit(vm, MSR(r, 0));
	emit(vm, ISB);
	emit(vm, STR(10, 27, 16 * i + 8));
	snprintf(vm->op[i].step, sizeof(vm->op[i].step),
		 "guest_write.%s=0x%llx", r, (unsigned long long)v);
}

/* The guest leaves to userspace (an MMIO store that KVM cannot handle). */
static void g_exit(struct vm *vm)
{
	unsigned i = vm->nops++;

	emit(vm, STR(31, 28, 8 * i));   /* str xzr, [x28, #8*i] */
	vm->op[i].is_exit = 1;
}

/* Run the vCPU until its next exit to userspace; report the guest ops that
 * completed and the exit. */
static void run(struct vm *vm)
{
	uint64_t *res = (uint64_t *)(vm->mem + RES_OFF);
	const char *why;

	emit(vm, BSELF);   /* a guard after the last emitted instruction */
	vm->ncode--;       /* (overwritten by the next emit) */
	__builtin___clear_cache((char *)vm->code, (char *)(vm->code + vm->ncode + 1));
	if (ioctl(vm->vcpufd, KVM_RUN, 0))
		die("KVM_RUN");
	switch (vm->run->exit_reason) {
	case KVM_EXIT_MMIO:          why = "MMIO"; break;
	case KVM_EXIT_SYSTEM_EVENT:  why = "SYSTEM_EVENT"; break;
	case KVM_EXIT_FAIL_ENTRY:    why = "FAIL_ENTRY"; break;
	case KVM_EXIT_INTERNAL_ERROR: why = "INTERNAL_ERROR"; break;
	default:                     why = "OTHER"; break;
	}
	unsigned upto = vm->nops;
	if (vm->run->exit_reason == KVM_EXIT_MMIO)
		upto = (vm->run->mmio.phys_addr - MMIO_BASE) / 8;
	for (unsigned i = vm->printed; i < upto && i < vm->nops; i++) {
		if (vm->op[i].is_exit)
			continue;
		if (res[2 * i + 1])
			row(vm->op[i].step, "undef:0x%llx", (unsigned long long)res[2 * i + 1]);
		else if (vm->op[i].is_read)
			row(vm->op[i].step, "0x%llx", (unsigned long long)res[2 * i]);
		else
			row(vm->op[i].step, "done");
	}
	vm->printed = upto + 1;
	row("exit.run", "%s", why);
}

static void get_reg(struct vm *vm, const char *r)
{
	char step[64];
	uint64_t v = 0;
	int e = one_reg(vm, KVM_GET_ONE_REG, reg_id(reg(r)), &v);

	snprintf(step, sizeof(step), "get_one_reg.%s", r);
	if (e)
		row(step, "%s", errname(e));
	else
		row(step, "0x%llx", (unsigned long long)v);
}

static int set_reg(struct vm *vm, const char *r, uint64_t v)
{
	char step[64];
	int e = one_reg(vm, KVM_SET_ONE_REG, reg_id(reg(r)), &v);

	snprintf(step, sizeof(step), "set_one_reg.%s=0x%llx", r, (unsigned long long)v);
	row(step, "%s", e ? errname(e) : "ok");
	return e;
}

static void reg_list(struct vm *vm, const char *const *names)
{
	struct kvm_reg_list probe_n = { .n = 0 }, *list;
	char step[64];

	ioctl(vm->vcpufd, KVM_GET_REG_LIST, &probe_n);   /* E2BIG, sets n */
	list = calloc(1, sizeof(*list) + probe_n.n * sizeof(uint64_t));
	list->n = probe_n.n;
	if (ioctl(vm->vcpufd, KVM_GET_REG_LIST, list))
		die("KVM_GET_REG_LIST");
	for (; *names; names++) {
		uint64_t id = reg_id(reg(*names));
		int found = 0;

		for (uint64_t i = 0; i < list->n; i++)
			found |= list->reg[i] == id;
		snprintf(step, sizeof(step), "reg_list.%s", *names);
		row(step, "%s", found ? "listed" : "unlisted");
	}
	free(list);
}

static void vm_open(struct vm *vm)
{
	struct kvm_userspace_memory_region mr;
	uint32_t *vec;

	memset(vm, 0, sizeof(*vm));
	vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm < 0)
		die("open /dev/kvm");
	vm->vmfd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
	if (vm->vmfd < 0)
		die("KVM_CREATE_VM");
	vm->mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->mem == MAP_FAILED)
		die("mmap guest RAM");
	mr = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = RAM_BASE, .memory_size = RAM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)vm->mem };
	if (ioctl(vm->vmfd, KVM_SET_USER_MEMORY_REGION, &mr))
		die("KVM_SET_USER_MEMORY_REGION");
	vm->vcpufd = ioctl(vm->vmfd, KVM_CREATE_VCPU, 0);
	if (vm->vcpufd < 0)
		die("KVM_CREATE_VCPU");
	vm->run_size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->vcpufd, 0);
	if (vm->run == MAP_FAILED)
		die("mmap kvm_run");
	if (vcpu_init(vm))
		die("KVM_ARM_VCPU_INIT");
	vm->code = (uint32_t *)(vm->mem + CODE_OFF);
	/* Synchronous exception, current EL with SP_ELx (offset 0x200): record
	 * ESR_EL1 in x10 and return past the faulting instruction. */
	vec = (uint32_t *)(vm->mem + VEC_OFF + 0x200);
	vec[0] = MRS(10, "ESR_EL1");
	vec[1] = MRS(11, "ELR_EL1");
	vec[2] = ADDI(11, 11, 4);
	vec[3] = MSR("ELR_EL1", 11);
	vec[4] = ERET;
}

static void vm_close(struct vm *vm)
{
	munmap(vm->run, vm->run_size);
	close(vm->vcpufd);
	close(vm->vmfd);
	close(vm->kvm);
	munmap(vm->mem, RAM_SIZE);
}

/* ------------------------------------------------------------ scenarios */

static void s_host_oslock(struct vm *vm)
{
	probe("before_vm");
	vm_open(vm);
	segment(vm);
	g_write(vm, "OSLAR_EL1", 1);
	g_read(vm, "OSLSR_EL1");
	g_exit(vm);
	run(vm);
	probe("after_run");
	row("vcpu_init.again", "%s", vcpu_init(vm) ? errname(errno) : "ok");
	probe("after_init");
	get_reg(vm, "OSLSR_EL1");
	vm_close(vm);
	row("vm_close.all", "ok");
	probe("after_close");
}

static void s_reset_values(struct vm *vm)
{
	vm_open(vm);
	get_reg(vm, "OSLSR_EL1");
	get_reg(vm, "TTBR1_EL1");
	get_reg(vm, "ESR_EL1");
	get_reg(vm, "MDSCR_EL1");
	segment(vm);
	g_read(vm, "OSLSR_EL1");
	g_read(vm, "TTBR1_EL1");
	g_read(vm, "ESR_EL1");
	g_read(vm, "MDSCR_EL1");
	g_read(vm, "OSDLR_EL1");
	g_exit(vm);
	run(vm);
	vm_close(vm);
}

static void s_lock_unlock(struct vm *vm)
{
	vm_open(vm);
	segment(vm);
	g_write(vm, "OSLAR_EL1", 1);
	g_read(vm, "OSLSR_EL1");
	g_write(vm, "OSLAR_EL1", 0);
	g_read(vm, "OSLSR_EL1");
	g_exit(vm);
	run(vm);
	get_reg(vm, "OSLSR_EL1");
	vm_close(vm);
}

static void s_osdlr(struct vm *vm)
{
	vm_open(vm);
	segment(vm);
	g_write(vm, "OSDLR_EL1", 1);
	g_read(vm, "OSDLR_EL1");
	g_write(vm, "OSDLR_EL1", 0);
	g_read(vm, "OSDLR_EL1");
	g_exit(vm);
	run(vm);
	vm_close(vm);
}

static void s_id_aa64dfr0(struct vm *vm)
{
	uint64_t v = 0, base;

	vm_open(vm);
	segment(vm);
	g_read(vm, "ID_AA64DFR0_EL1");
	g_exit(vm);
	run(vm);
	get_reg(vm, "ID_AA64DFR0_EL1");
	if (one_reg(vm, KVM_GET_ONE_REG, reg_id(reg("ID_AA64DFR0_EL1")), &v) == 0) {
		set_reg(vm, "ID_AA64DFR0_EL1", v);
		/* the value a 5.15 baseline reports on this CPU: DebugVer 6
		 * (v8.0), DoubleLock 0 (implemented, as on QEMU's -cpu max) */
		base = (v & ~(0xFull | 0xFull << 36)) | 6;
		set_reg(vm, "ID_AA64DFR0_EL1", base);
		get_reg(vm, "ID_AA64DFR0_EL1");
	}
	vm_close(vm);
}

static void s_reg_list(struct vm *vm)
{
	static const char *const names[] = { "OSLSR_EL1", "OSLAR_EL1", "OSDLR_EL1",
		"MDSCR_EL1", "ID_AA64DFR0_EL1", "TTBR1_EL1", "ESR_EL1", NULL };

	vm_open(vm);
	reg_list(vm, names);
	get_reg(vm, "OSLSR_EL1");
	get_reg(vm, "OSLAR_EL1");
	get_reg(vm, "OSDLR_EL1");
	get_reg(vm, "ID_AA64DFR0_EL1");
	get_reg(vm, "TTBR1_EL1");
	get_reg(vm, "ESR_EL1");
	set_reg(vm, "TTBR1_EL1", 0x12345000);
	set_reg(vm, "ESR_EL1", 0x5a);
	get_reg(vm, "TTBR1_EL1");
	get_reg(vm, "ESR_EL1");
	segment(vm);
	g_read(vm, "TTBR1_EL1");
	g_read(vm, "ESR_EL1");
	g_exit(vm);
	run(vm);
	vm_close(vm);
}

static void s_exits(struct vm *vm)
{
	vm_open(vm);
	segment(vm);
	g_write(vm, "OSLAR_EL1", 1);
	for (int k = 0; k < 3; k++) {
		g_read(vm, "OSLSR_EL1");
		g_exit(vm);
		run(vm);
		probe("after_exit");
		get_reg(vm, "OSLSR_EL1");
	}
	vm_close(vm);
}

static void s_corrupt(struct vm *vm, uint64_t oslk)
{
	vm_open(vm);
	segment(vm);
	g_write(vm, "OSLAR_EL1", oslk);
	g_read(vm, "TTBR1_EL1");
	g_read(vm, "ESR_EL1");
	g_read(vm, "OSLSR_EL1");
	g_exit(vm);
	run(vm);
	get_reg(vm, "TTBR1_EL1");
	get_reg(vm, "ESR_EL1");
	get_reg(vm, "OSLSR_EL1");
	vm_close(vm);
}

static void s_corrupt_unlock(struct vm *vm) { s_corrupt(vm, 0); }
static void s_corrupt_lock(struct vm *vm) { s_corrupt(vm, 1); }

static void s_undef(struct vm *vm)
{
	vm_open(vm);
	segment(vm);
	g_read(vm, "OSLAR_EL1");
	g_write(vm, "OSLSR_EL1", 0);
	g_read(vm, "OSLSR_EL1");
	g_exit(vm);
	run(vm);
	vm_close(vm);
}

static void s_mdscr_lock(struct vm *vm)
{
	vm_open(vm);
	segment(vm);
	g_write(vm, "MDSCR_EL1", 0xA001);   /* MDE | KDE | SS */
	g_write(vm, "OSLAR_EL1", 1);
	g_read(vm, "MDSCR_EL1");
	g_read(vm, "OSLSR_EL1");
	g_write(vm, "OSLAR_EL1", 0);
	g_read(vm, "MDSCR_EL1");
	g_exit(vm);
	run(vm);
	get_reg(vm, "MDSCR_EL1");
	vm_close(vm);
}

static void s_reinit(struct vm *vm)
{
	vm_open(vm);
	segment(vm);
	g_write(vm, "OSLAR_EL1", 1);
	g_read(vm, "OSLSR_EL1");
	g_read(vm, "ESR_EL1");
	g_exit(vm);
	run(vm);
	row("vcpu_init.again", "%s", vcpu_init(vm) ? errname(errno) : "ok");
	get_reg(vm, "OSLSR_EL1");
	get_reg(vm, "ESR_EL1");
	get_reg(vm, "TTBR1_EL1");
	segment(vm);
	g_read(vm, "OSLSR_EL1");
	g_read(vm, "ESR_EL1");
	g_read(vm, "TTBR1_EL1");
	g_exit(vm);
	run(vm);
	vm_close(vm);
}

static void s_planted(struct vm *vm, uint64_t v)
{
	vm_open(vm);
	set_reg(vm, "OSLSR_EL1", v);
	get_reg(vm, "OSLSR_EL1");
	segment(vm);
	g_read(vm, "OSLSR_EL1");
	g_exit(vm);
	run(vm);
	get_reg(vm, "OSLSR_EL1");
	vm_close(vm);
}

static void s_planted_0(struct vm *vm) { s_planted(vm, 0x0); }

/* Patch 2 as posted stores 26 into sys_regs[(OSLSR & ~2) | OSLK << 1]: with a
 * planted OSLSR the guest's OSLAR write picks the slot.  0x18 | 2 = 26 is
 * OSLSR_EL1's own slot; 0x0 | 2 = 2 is CSSELR_EL1 in the 5.15 enum. */
static void s_planted_slot(struct vm *vm, uint64_t planted, const char *victim)
{
	vm_open(vm);
	set_reg(vm, "OSLSR_EL1", planted);
	get_reg(vm, victim);
	segment(vm);
	g_write(vm, "OSLAR_EL1", 1);
	g_read(vm, victim);
	g_read(vm, "OSLSR_EL1");
	g_exit(vm);
	run(vm);
	get_reg(vm, victim);
	get_reg(vm, "OSLSR_EL1");
	vm_close(vm);
}

static void s_slot_oslsr(struct vm *vm) { s_planted_slot(vm, 0x18, "OSLSR_EL1"); }
static void s_slot_csselr(struct vm *vm) { s_planted_slot(vm, 0x0, "CSSELR_EL1"); }
static void s_planted_a(struct vm *vm) { s_planted(vm, 0xA); }

static const struct { const char *name; void (*fn)(struct vm *); } SCENARIOS[] = {
	/* first: the host's lock is read before any guest has run */
	{ "host_oslock", s_host_oslock },
	{ "reset_values", s_reset_values },
	{ "lock_unlock", s_lock_unlock },
	{ "osdlr", s_osdlr },
	{ "id_aa64dfr0", s_id_aa64dfr0 },
	{ "reg_list", s_reg_list },
	{ "exits_reentries", s_exits },
	{ "corrupt_unlock", s_corrupt_unlock },
	{ "corrupt_lock", s_corrupt_lock },
	{ "undef_forms", s_undef },
	{ "mdscr_lock", s_mdscr_lock },
	{ "vcpu_reinit", s_reinit },
	{ "planted_oslsr_0", s_planted_0 },
	{ "planted_oslsr_a", s_planted_a },
	{ "planted_slot_oslsr", s_slot_oslsr },
	{ "planted_slot_csselr", s_slot_csselr },
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	struct utsname u;
	struct vm vm;
	cpu_set_t cpus;
	double t0 = now();

	mkdir("/dev", 0755);
	mknod("/dev/kvm", S_IFCHR | 0600, makedev(10, 232));
	mount("proc", "/proc", "proc", 0, NULL);
	if (mount("debugfs", "/dbg", "debugfs", 0, NULL))
		printf("RKMETA warning mount debugfs: %s\n", strerror(errno));
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		die("sched_setaffinity");
	uname(&u);
	printf("RKMETA release %s\n", u.release);
	printf("RKMETA version %s\n", u.version);
	for (size_t i = 0; i < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); i++) {
		double t = now();

		scn = SCENARIOS[i].name;
		seq = 0;
		SCENARIOS[i].fn(&vm);
		printf("RKMETA time.%s %.6f\n", scn, now() - t);
	}
	printf("RKMETA seconds %.3f\n", now() - t0);
	printf("RKMETA done ok\n");
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
