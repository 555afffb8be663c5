/* A 32-bit (ia32) program that makes its system calls through int 0x80,
 * the i386 ABI, with i386 syscall numbers: the evasion path a sensor that
 * watches only x86_64 syscalls misses. Built by the tests with
 * `as --32` and `ld -m elf_i386` (binutils; no 32-bit libc needed).
 *
 *   probe32 PATH PORT
 * creates PATH (openat, O_CREAT), unlinks it, then connects a TCP socket
 * to 127.0.0.1:PORT with connect(2) (i386 362) and another one to
 * 127.0.0.1:PORT+1 through socketcall(2) (102), old 32-bit programs' one
 * door to the socket calls. Exits 0, or 1 on any failed call (a refused
 * connection is not a failure: the attempt is what is watched).
 */
        .code32
        .globl _start
        .text
_start:
        mov     8(%esp), %esi           /* argv[1]: path */
        mov     12(%esp), %edi          /* argv[2]: port, decimal */
        test    %esi, %esi
        jz      fail
        test    %edi, %edi
        jz      fail

        /* openat(AT_FDCWD, path, O_WRONLY|O_CREAT, 0644) */
        mov     $295, %eax
        mov     $-100, %ebx
        mov     %esi, %ecx
        mov     $0101, %edx
        mov     $0644, %esi             /* the path is read again from argv */
        int     $0x80
        test    %eax, %eax
        js      fail
        mov     %eax, %ebx              /* close(fd) */
        mov     $6, %eax
        int     $0x80

        /* unlink(path) */
        mov     $10, %eax
        mov     8(%esp), %ebx
        int     $0x80
        test    %eax, %eax
        jnz     fail

        /* port = atoi(argv[2]) */
        xor     %eax, %eax
        xor     %ecx, %ecx
1:      movzbl  (%edi), %ecx
        test    %ecx, %ecx
        jz      2f
        sub     $'0', %ecx
        imul    $10, %eax
        add     %ecx, %eax
        inc     %edi
        jmp     1b
2:      mov     %eax, %ecx
        xchg    %al, %ah                /* to network byte order */
        mov     %ax, sin_port
        inc     %ecx                    /* PORT+1 for socketcall */
        xchg    %cl, %ch
        mov     %cx, sin2_port

        /* socket(AF_INET, SOCK_STREAM, 0) */
        mov     $359, %eax
        mov     $2, %ebx
        mov     $1, %ecx
        xor     %edx, %edx
        int     $0x80
        test    %eax, %eax
        js      fail

        /* connect(fd, &sin, 16) */
        mov     %eax, %ebx
        mov     $362, %eax
        mov     $sin, %ecx
        mov     $16, %edx
        int     $0x80
        call    connected

        /* socketcall(SYS_SOCKET, {AF_INET, SOCK_STREAM, 0}) */
        mov     $102, %eax
        mov     $1, %ebx
        mov     $sockargs, %ecx
        int     $0x80
        test    %eax, %eax
        js      fail
        mov     %eax, connargs
        /* socketcall(SYS_CONNECT, {fd, &sin, 16}) */
        mov     $102, %eax
        mov     $3, %ebx
        mov     $connargs, %ecx
        int     $0x80
        call    connected

        mov     $252, %eax              /* exit_group(0) */
        xor     %ebx, %ebx
        int     $0x80
/* After a connect: 0 or ECONNREFUSED go on, anything else fails. */
connected:
        test    %eax, %eax
        jz      3f
        cmp     $-111, %eax
        jne     fail
3:      ret
fail:
        mov     $252, %eax
        mov     $1, %ebx
        int     $0x80

        .data
sin:    .short  2                       /* AF_INET */
sin_port:
        .short  0
        .byte   127, 0, 0, 1
        .long   0, 0
sin2:   .short  2
sin2_port:
        .short  0
        .byte   127, 0, 0, 1
        .long   0, 0
sockargs:
        .long   2, 1, 0
connargs:
        .long   0, sin2, 16
