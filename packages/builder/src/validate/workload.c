/*
 * The validation guest's workload: keeps the kernel busy with ordinary
 * system calls (files, pipes, sockets, processes, memory) while a livepatch
 * transition runs, and counts every operation and every failure.
 *
 *   workload <status-file>
 *
 * Runs until SIGTERM, then writes "operations N failed M" to the status file
 * (and every second while running, so a crash still leaves counts behind).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static unsigned long long ops, failed;

static void on_term(int sig) { (void)sig; stop = 1; }

static void note(int ok) {
	ops++;
	if (!ok) failed++;
}

static void save(const char *path) {
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) return;
	fprintf(f, "operations %llu failed %llu\n", ops, failed);
	fclose(f);
	rename(tmp, path);
}

static void file_io(void) {
	char buf[256];
	int fd = open("/proc/self/stat", O_RDONLY);
	note(fd >= 0 && read(fd, buf, sizeof buf) > 0);
	if (fd >= 0) close(fd);
	fd = open("/tmp/.workload", O_CREAT | O_TRUNC | O_WRONLY, 0600);
	note(fd >= 0 && write(fd, "livegraft\n", 10) == 10);
	if (fd >= 0) close(fd);
	struct stat st;
	note(stat("/tmp/.workload", &st) == 0 && st.st_size == 10);
}

static void pipes_and_sockets(void) {
	int p[2];
	char c = 0;
	note(pipe(p) == 0 && write(p[1], "x", 1) == 1 && read(p[0], &c, 1) == 1 && c == 'x');
	close(p[0]);
	close(p[1]);
	int s[2];
	note(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0 && send(s[0], "y", 1, 0) == 1 && recv(s[1], &c, 1, 0) == 1 &&
	     c == 'y');
	close(s[0]);
	close(s[1]);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	note(u >= 0);
	if (u >= 0) close(u);
}

static void memory_and_processes(void) {
	void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	note(m != MAP_FAILED);
	if (m != MAP_FAILED) {
		memset(m, 1, 1 << 16);
		munmap(m, 1 << 16);
	}
	pid_t pid = fork();
	if (pid == 0) _exit(7);
	int status = 0;
	note(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7);
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: workload <status-file>\n");
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	time_t last = 0;
	while (!stop) {
		file_io();
		pipes_and_sockets();
		memory_and_processes();
		time_t now = time(NULL);
		if (now != last) {
			save(argv[1]);
			last = now;
		}
	}
	save(argv[1]);
	return 0;
}
