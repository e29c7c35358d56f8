// SPDX-License-Identifier: GPL-2.0
/*
 * LG-DEMO-0002: /proc/loadavg without the last PID.
 *
 * Replaces loadavg_proc_show() (fs/proc/loadavg.c in 6.1). The output keeps
 * its format, "%lu.%02lu %lu.%02lu %lu.%02lu %u/%d %d\n", so parsers keep
 * working; only the last field, the last allocated PID, becomes 0.
 *
 * get_avenrun(), nr_running() and nr_threads are not exported to modules, so
 * they are declared in fix.json "symbols" and reached through LG_SYMBOL.
 */
#include <linux/sched/loadavg.h>
#include <linux/seq_file.h>
#include <linux/types.h>

#include "livegraft.h"

typedef void (*lg_get_avenrun_fn)(unsigned long *loads, unsigned long offset, int shift);
typedef unsigned int (*lg_nr_running_fn)(void);

/* Same signature as the function it replaces; the prototype keeps W=1 builds quiet. */
int livegraft_loadavg_proc_show(struct seq_file *m, void *v);

int livegraft_loadavg_proc_show(struct seq_file *m, void *v)
{
	lg_get_avenrun_fn get_avenrun_fn = LG_SYMBOL(get_avenrun);
	lg_nr_running_fn nr_running_fn = LG_SYMBOL(nr_running);
	const int *nr_threads_p = LG_SYMBOL(nr_threads);
	unsigned long avnrun[3];

	get_avenrun_fn(avnrun, FIXED_1 / 200, 0);

	seq_printf(m, "%lu.%02lu %lu.%02lu %lu.%02lu %u/%d %d\n",
		   LOAD_INT(avnrun[0]), LOAD_FRAC(avnrun[0]),
		   LOAD_INT(avnrun[1]), LOAD_FRAC(avnrun[1]),
		   LOAD_INT(avnrun[2]), LOAD_FRAC(avnrun[2]),
		   nr_running_fn(), READ_ONCE(*nr_threads_p), 0);
	return 0;
}
