// SPDX-License-Identifier: GPL-2.0
/*
 * LG-DEMO-0003: the demonstration flaw CVE-2099-0001 in /dev/null's write
 * handler. In 6.1, drivers/char/mem.c has
 *
 *	static ssize_t write_null(struct file *file, const char __user *buf,
 *				  size_t count, loff_t *ppos)
 *	{
 *		return count;
 *	}
 *
 * The pretend exploit is a write whose data starts with DEMO_EXPLOIT_MARKER.
 * The replacement refuses exactly that write and reports it; every other
 * write is discarded as before.
 */
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/string.h>
#include <linux/types.h>
#include <linux/uaccess.h>
#include "livegraft.h"

#define DEMO_EXPLOIT_MARKER "LIVEGRAFT-DEMO-EXPLOIT"
#define DEMO_EXPLOIT_MARKER_LEN (sizeof(DEMO_EXPLOIT_MARKER) - 1)

ssize_t livegraft_write_null(struct file *file, const char __user *buf, size_t count, loff_t *ppos);

ssize_t livegraft_write_null(struct file *file, const char __user *buf, size_t count, loff_t *ppos)
{
	char head[DEMO_EXPLOIT_MARKER_LEN];

	if (count < DEMO_EXPLOIT_MARKER_LEN)
		return count;
	/*
	 * The original never reads the buffer, so a write from an unreadable
	 * address succeeds; it still must.
	 */
	if (copy_from_user(head, buf, sizeof(head)))
		return count;
	if (memcmp(head, DEMO_EXPLOIT_MARKER, sizeof(head)) != 0)
		return count;
	LG_TRIPWIRE("CVE-2099-0001");
	return -EPERM;
}
