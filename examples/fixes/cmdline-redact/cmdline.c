// SPDX-License-Identifier: GPL-2.0
/*
 * LG-DEMO-0001: /proc/cmdline without boot-time secrets.
 *
 * Replaces cmdline_proc_show() (fs/proc/cmdline.c). The command line is
 * split the way the kernel's next_arg() splits it (whitespace outside double
 * quotes; the key ends at the first '='), and the value of every parameter
 * whose key ends in "password", "secret" or "token" is printed as "***".
 * Everything else, spacing included, is copied unchanged. It streams straight
 * into the seq_file: no allocation, one pass, bounded by CMDLINE_SCAN_MAX.
 */
#include <linux/ctype.h>
#include <linux/init.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/types.h>

#include "livegraft.h"

/* saved_command_line is sized to the command line plus bootconfig; this only guards a corrupt pointer. */
#define CMDLINE_SCAN_MAX 65536

static const char *const secret_suffixes[] = { "password", "secret", "token" };

static bool key_is_secret(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(secret_suffixes); i++) {
		size_t n = strlen(secret_suffixes[i]);

		if (len >= n && !strncasecmp(key + len - n, secret_suffixes[i], n))
			return true;
	}
	return false;
}

/* Length of the parameter starting at p (p[0] is not whitespace), as next_arg() delimits it. */
static size_t param_len(const char *p, size_t left, size_t *equals)
{
	bool in_quote = false;
	size_t i;

	*equals = 0;
	for (i = 0; i < left; i++) {
		if (isspace(p[i]) && !in_quote)
			break;
		if (p[i] == '=' && *equals == 0 && i > 0)
			*equals = i;
		if (p[i] == '"')
			in_quote = !in_quote;
	}
	return i;
}

/* Same signature as the function it replaces; the prototype keeps W=1 builds quiet. */
int livegraft_cmdline_proc_show(struct seq_file *m, void *v);

int livegraft_cmdline_proc_show(struct seq_file *m, void *v)
{
	const char *line = READ_ONCE(*(char **)LG_SYMBOL(saved_command_line));
	size_t len, pos = 0;

	if (!line)
		line = "";
	len = strnlen(line, CMDLINE_SCAN_MAX);

	while (pos < len) {
		const char *p = line + pos;
		size_t plen, equals, key_start;

		if (isspace(*p)) {
			seq_putc(m, *p);
			pos++;
			continue;
		}
		plen = param_len(p, len - pos, &equals);
		/* A parameter may be wholly quoted: "key=value with spaces". */
		key_start = p[0] == '"' ? 1 : 0;
		if (equals > key_start && key_is_secret(p + key_start, equals - key_start)) {
			seq_write(m, p, equals + 1);
			seq_puts(m, "***");
			if (key_start)
				seq_putc(m, '"');
		} else {
			seq_write(m, p, plen);
		}
		pos += plen;
	}
	seq_putc(m, '\n');
	return 0;
}
