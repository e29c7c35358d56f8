#!/bin/sh
# /init of the Livegraft test guest: mount, load drivers, re-apply patches at
# boot (before any network, as a boot unit would), bring up the network, and
# hand the serial console to the host's test driver.
export PATH=/bin:/sbin:/usr/bin
export LIVEGRAFT_STATE_DIR=/var/lib/livegraft
export LIVEGRAFT_CONFIG=/var/lib/livegraft/agent.json
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
while read -r m; do
  [ -n "$m" ] && insmod "/lib/modules/$m"
done < /etc/modules.load
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# ext4 with its journal, as real hosts have: an unclean stop is replayed, not left for fsck.
mount -t ext4 /dev/vda /var/lib/livegraft || echo "LIVEGRAFT_GUEST_DISK_FAILED" > /dev/kmsg
if [ -f "$LIVEGRAFT_CONFIG" ]; then
  livegraft-agent boot > /tmp/boot.log 2>&1
  echo $? > /tmp/boot.rc
fi
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
  ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2
fi
export PS1=''
stty -echo
echo LIVEGRAFT_GUEST_READY
# PID 1 must never exit: the kernel panics and every later test loses the
# guest. The console shell did exit under load. Node makes a terminal it writes
# to non-blocking (O_NONBLOCK, on the open file it shares with whoever else has
# it open), and a node that dies without restoring it leaves it so; the shell,
# reading that same open file, then got EAGAIN, took it for end of input and
# exited (reproduced: a node writing to the console, killed with SIGKILL,
# panics the guest with "Attempted to kill init! exitcode=0x00000000"). So the
# shell reads its own open of the console, which no command shares: commands
# get /dev/null as input and a fresh open of the console as output
# (test/vm/lib/guest.ts). Commands also run in a subshell, so no background
# child of the console shell can end while it reads (busybox ash with echo off
# takes the EINTR of that SIGCHLD for end of input: see Guest.run). Should the
# shell end all the same, it is restarted, and the restart and the shell's
# exit status are logged and announced to the test driver.
while :; do
  sh < /dev/console > /dev/console 2>&1
  echo "livegraft-test: console shell exited ($?), restarting it" > /dev/kmsg
  stty -echo < /dev/console 2>/dev/null
  echo LIVEGRAFT_GUEST_SHELL_RESTARTED > /dev/console
  sleep 0.2
done
