// SPDX-License-Identifier: GPL-2.0
/*
 * kvmdbg realkvm probe: a read-only debugfs file, <debugfs>/realkvm_oslsr,
 * that reports the OS Lock status register (OSLSR_EL1) of the physical PE
 * the reading task runs on.  It never writes any register.
 *
 * Reading it prints one line: "cpu=<n> oslsr_el1=0x<hex> el=<n>".
 * Written for kvmdbg (not part of Linux); the build script copies it into
 * drivers/misc/ of the kernel tree it is given.
 */
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/preempt.h>
#include <linux/smp.h>
#include <asm/sysreg.h>

static ssize_t realkvm_oslsr_read(struct file *file, char __user *buf,
				  size_t count, loff_t *ppos)
{
	char line[80];
	u64 oslsr, el;
	int cpu, len;

	preempt_disable();
	cpu = smp_processor_id();
	oslsr = read_sysreg(oslsr_el1);
	el = (read_sysreg(CurrentEL) >> 2) & 3;
	preempt_enable();

	len = scnprintf(line, sizeof(line), "cpu=%d oslsr_el1=0x%llx el=%llu\n",
			cpu, oslsr, el);
	return simple_read_from_buffer(buf, count, ppos, line, len);
}

static const struct file_operations realkvm_oslsr_fops = {
	.owner = THIS_MODULE,
	.read = realkvm_oslsr_read,
	.llseek = default_llseek,
};

static int __init realkvm_probe_init(void)
{
	debugfs_create_file("realkvm_oslsr", 0444, NULL, NULL,
			    &realkvm_oslsr_fops);
	return 0;
}
late_initcall(realkvm_probe_init);
