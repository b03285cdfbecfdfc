#!/usr/bin/python3
"""Runs a program under the seccomp sandbox a systemd unit file describes, the way systemd
would load it, for hosts where systemd is not PID 1 (containers, CI).

    /usr/bin/python3 under_unit.py UNIT -- PROGRAM [ARG...]

Reads the unit's [Service] section and loads, before exec'ing PROGRAM:
  - SystemCallFilter= (allow-list, then `~` deny entries; groups expanded with
    `systemd-analyze syscall-filter`, nested groups included), SystemCallErrorNumber=,
    SystemCallArchitectures=native (libseccomp's default: the native architecture only);
    in allow-list mode the calls systemd always permits are added (execve, exit, exit_group,
    getrlimit, rt_sigreturn, sigreturn and the rest of its list);
  - RestrictAddressFamilies= (socket() with any other family fails with EAFNOSUPPORT);
  - MemoryDenyWriteExecute=yes (writable+executable mmap, mprotect/pkey_mprotect adding
    PROT_EXEC, and shmat with SHM_EXEC fail with EPERM), as systemd's own rules do;
  - NoNewPrivileges (libseccomp sets it).
Everything else in the unit (users, mounts, namespaces) is not applied: it needs PID 1.
Prints one line to stderr saying what it loaded. Needs Debian's python3-seccomp.
"""

import errno
import os
import re
import subprocess
import sys

try:
    import seccomp
except ImportError:
    sys.exit("under_unit.py: the libseccomp Python bindings are missing: apt-get install python3-seccomp "
             "(and run this with /usr/bin/python3)")

# systemd's syscall_filter_sets: in allow-list mode these are always permitted
# (src/shared/seccomp-util.c, seccomp_load_syscall_filter_set_raw callers; systemd.exec(5)).
ALWAYS_ALLOWED = ["execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"]

AF = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}

PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def service_settings(unit):
    settings = []
    section = None
    with open(unit) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                settings.append((key.strip(), value.strip()))
    return settings


def expand(names, seen=None):
    """Syscall names of `names` (groups like @system-service expanded recursively)."""
    seen = set() if seen is None else seen
    out = set()
    for name in names:
        if not name.startswith("@"):
            out.add(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        text = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                              capture_output=True, text=True).stdout
        members = [l.strip() for l in text.splitlines()[1:]
                   if l.strip() and not l.strip().startswith("#")]
        out |= expand(members, seen)
    return out


def errno_of(name):
    value = getattr(errno, name, None)
    if value is None:
        sys.exit(f"under_unit.py: unknown SystemCallErrorNumber={name}")
    return value


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        sys.exit(__doc__)
    unit, program = args[0], args[2:]
    settings = service_settings(unit)

    allow, deny, allow_mode = set(), set(), None
    error = errno.EPERM
    families = None
    mdwe = False
    for key, value in settings:
        if key == "SystemCallFilter":
            negate = value.startswith("~")
            names = expand(value.lstrip("~").split())
            if allow_mode is None:
                allow_mode = not negate
            if allow_mode:
                if negate:
                    allow -= names
                else:
                    allow |= names
            else:
                deny |= names if negate else set()
        elif key == "SystemCallErrorNumber":
            error = errno_of(value)
        elif key == "SystemCallArchitectures" and value != "native":
            sys.exit(f"under_unit.py: only SystemCallArchitectures=native is supported, got {value}")
        elif key == "RestrictAddressFamilies":
            families = sorted({AF[f] for f in value.split()})
        elif key == "MemoryDenyWriteExecute":
            mdwe = value.lower() in ("yes", "true", "1", "on")

    # The argument filter first: once the syscall filter is in, `seccomp` itself may be denied.
    loaded = []
    if families is not None or mdwe:
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        if families is not None:
            # As systemd does: below the first, above the last, and every gap between.
            nope = seccomp.ERRNO(errno.EAFNOSUPPORT)
            f.add_rule(nope, "socket", seccomp.Arg(0, seccomp.LT, families[0]))
            f.add_rule(nope, "socket", seccomp.Arg(0, seccomp.GT, families[-1]))
            for a, b in zip(families, families[1:]):
                for family in range(a + 1, b):
                    f.add_rule(nope, "socket", seccomp.Arg(0, seccomp.EQ, family))
            loaded.append(f"socket families {families}")
        if mdwe:
            perm = seccomp.ERRNO(errno.EPERM)
            both = PROT_WRITE | PROT_EXEC
            f.add_rule(perm, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, both, both))
            for call in ("mprotect", "pkey_mprotect"):
                f.add_rule(perm, call, seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
            f.add_rule(perm, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
            loaded.append("MemoryDenyWriteExecute")
        f.load()

    if allow_mode is not None:
        if allow_mode:
            f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(error))
            names, action = allow | set(ALWAYS_ALLOWED), seccomp.ALLOW
        else:
            f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
            names, action = deny, seccomp.ERRNO(error)
        known = 0
        for name in sorted(names):
            try:
                f.add_rule(action, name)
                known += 1
            except (RuntimeError, ValueError):
                pass  # not a call of this architecture or libseccomp version
        f.load()
        loaded.append(f"{'allow' if allow_mode else 'deny'}-list of {known} calls, else {errno.errorcode[error]}")

    print(f"under_unit.py: seccomp loaded from {unit}: {'; '.join(loaded) or 'nothing'}",
          file=sys.stderr, flush=True)
    os.execvp(program[0], program)


if __name__ == "__main__":
    main()
