/*
 * Inline probe handlers: the code an inline probe's trampoline runs before
 * the displaced instructions (and the shared return stub of latency
 * probes).  arch/x86_inline.py holds the bytes GNU as makes of this file;
 * tests/arch/test_x86_reloc.py assembles it again and compares, so edit
 * both together.  Build: as --64 -o x.o arch/x86_inline.S
 *
 * Values filled in per probe are distinctive immediates, each present
 * exactly once in its handler:
 *   0x1111..  the probe's data (counter, ring header, histogram)
 *   0x1a1a1a1a / 0x1b1b1b1b  a 32-bit counter's low and high word
 *   0x2222..  the shadow-stack table      0x3333..  the return stub
 *   0x44444444 ring capacity              0x55555555 ring index mask
 *   0x66666666 offset of the tid in the thread control block (glibc's
 *              struct pthread, from libc's _thread_db_pthread_tid)
 *   0x77777777 ns per TSC tick as a 32.32 fixed-point multiplier
 *   0x8888..  the vfork guard: the address of a word the tracer sets to
 *             a thread pointer while an unfollowed vfork child runs on
 *             that thread's memory and TLS, else 0; count, record and
 *             enter do nothing for the thread pointer it holds, and the
 *             return stub leaves its shadow stack as it is
 *
 * Every handler saves what it touches, flags included, and on x86_64 steps
 * over the 128-byte red zone before it pushes anything.
 */
/* Jump to \to when the guard is set and names this thread's pointer:
 * the hit is an unfollowed vfork child's.  Clobbers \acc and the flags. */
	.macro skip_vfork_child guard, acc, seg, to
	mov \guard,%\acc
	test %\acc,%\acc
	jz .Lunguarded\@
	cmp %\seg:0,%\acc
	je \to
.Lunguarded\@:
	.endm

	.text
	.code64
count64:	/* lock incq counter */
	lea -0x80(%rsp),%rsp
	pushfq
	push %rax
	skip_vfork_child 0x8888888888888888, rax, fs, 2f
	movabs $0x1111111111111111,%rax
	lock incq (%rax)
2:	pop %rax
	popfq
	lea 0x80(%rsp),%rsp
count64_end:
record64:	/* claim a ring slot if one is free, else count the loss */
	lea -0x80(%rsp),%rsp
	pushfq
	push %rax
	push %rcx
	push %rdx
	skip_vfork_child 0x8888888888888888, rax, fs, 9f
	movabs $0x1111111111111111,%rdx
1:	mov (%rdx),%rax			/* head */
	mov %rax,%rcx
	sub 8(%rdx),%rcx		/* head - tail */
	cmp $0x44444444,%rcx
	jae 8f
	lea 1(%rax),%rcx
	lock cmpxchg %rcx,(%rdx)
	jne 1b
	mov %rax,%rcx
	and $0x55555555,%rcx
	shl $6,%rcx
	lea 0x40(%rdx,%rcx),%rcx	/* record: commit, tid, six args */
	mov %fs:0x66666666,%edx
	mov %rdx,8(%rcx)
	mov %rdi,0x10(%rcx)
	mov %rsi,0x18(%rcx)
	mov (%rsp),%rdx
	mov %rdx,0x20(%rcx)
	mov 8(%rsp),%rdx
	mov %rdx,0x28(%rcx)
	mov %r8,0x30(%rcx)
	mov %r9,0x38(%rcx)
	inc %rax
	mov %rax,(%rcx)			/* commit last: the reader checks it */
	jmp 9f
8:	lock incq 0x10(%rdx)		/* lost */
9:	pop %rdx
	pop %rcx
	pop %rax
	popfq
	lea 0x80(%rsp),%rsp
record64_end:
enter64:	/* push (slot, return address, tsc, histogram); hijack the return */
	lea -0x80(%rsp),%rsp
	pushfq
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	mov %fs:0,%rsi			/* thread pointer: the table key */
	movabs 0x8888888888888888,%rax
	cmp %rsi,%rax
	je 9f				/* an unfollowed vfork child */
	imul $0x61c88647,%rsi,%rcx
	shr $57,%rcx
	mov $128,%edx
1:	imul $1040,%rcx,%rdi
	movabs $0x2222222222222222,%rax
	add %rax,%rdi
	mov (%rdi),%rax
	cmp %rsi,%rax
	je 3f
	test %rax,%rax
	jnz 2f
	lock cmpxchg %rsi,(%rdi)	/* claim a free slot */
	je 3f
	cmp %rsi,%rax
	je 3f
2:	inc %rcx
	and $127,%rcx
	dec %edx
	jnz 1b
	jmp 9f				/* table full: this call is not timed */
3:	mov 8(%rdi),%rcx
	cmp $32,%rcx
	jae 9f				/* too deep: not timed */
	lea 1(%rcx),%rdx
	mov %rdx,8(%rdi)		/* reserve first: a signal handler nests above */
	shl $5,%rcx
	lea 16(%rdi,%rcx),%rdi
	lea 0xb0(%rsp),%rsi		/* the return address slot */
	mov %rsi,(%rdi)
	mov (%rsi),%rax
	mov %rax,8(%rdi)
	movabs $0x1111111111111111,%rax
	mov %rax,24(%rdi)
	rdtsc
	shl $32,%rdx
	or %rdx,%rax
	mov %rax,16(%rdi)
	movabs $0x3333333333333333,%rax
	mov %rax,(%rsi)
9:	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	popfq
	lea 0x80(%rsp),%rsp
enter64_end:
return64:	/* find this frame's entry, count ns in its bucket, return for real */
	lea -8(%rsp),%rsp		/* the real return address goes here */
	pushfq
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	rdtsc
	shl $32,%rdx
	or %rdx,%rax
	mov %rax,%r8
	mov %fs:0,%rsi
	imul $0x61c88647,%rsi,%rcx
	shr $57,%rcx
	mov $128,%edx
1:	imul $1040,%rcx,%rdi
	movabs $0x2222222222222222,%rax
	add %rax,%rdi
	cmp %rsi,(%rdi)
	je 3f
	inc %rcx
	and $127,%rcx
	dec %edx
	jnz 1b
	ud2
3:	lea 56(%rsp),%rsi
	mov 8(%rdi),%rcx
4:	test %rcx,%rcx			/* newest first; entries above the match */
	jz 8f				/* are frames a longjmp skipped */
	dec %rcx
	mov %rcx,%rdx
	shl $5,%rdx
	lea 16(%rdi,%rdx),%rdx
	cmp %rsi,(%rdx)
	jne 4b
	mov 8(%rdx),%rax
	mov %rax,(%rsi)
	/* an unfollowed vfork child returning from the vfork its parent
	 * called: the parent returns through this frame again */
	skip_vfork_child 0x8888888888888888, rax, fs, 7f
	sub 16(%rdx),%r8		/* ticks */
	mov 24(%rdx),%rsi		/* histogram */
	mov %rcx,8(%rdi)		/* pop, after the entry is read */
	mov %r8,%rax
	mov $0x77777777,%ecx
	mul %rcx
	shrd $32,%rdx,%rax		/* ns */
	xor %ecx,%ecx
	test %rax,%rax
	jz 5f
	bsr %rax,%rcx
	inc %ecx
5:	lock incq (%rsi,%rcx,8)
7:	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	popfq
	ret
8:	ud2
return64_end:

	.code32
count32:	/* a 64-bit counter: each thread's carry is its own */
	pushfl
	push %eax
	skip_vfork_child 0x88888888, eax, gs, 2f
	lock addl $1,0x1a1a1a1a
	lock adcl $0,0x1b1b1b1b
2:	pop %eax
	popfl
count32_end:
record32:	/* cdecl: the six argument words above the return address */
	pushfl
	push %eax
	push %ecx
	push %edx
	skip_vfork_child 0x88888888, eax, gs, 9f
	mov $0x11111111,%edx
1:	mov (%edx),%eax
	mov %eax,%ecx
	sub 4(%edx),%ecx
	cmp $0x44444444,%ecx
	jae 8f
	lea 1(%eax),%ecx
	lock cmpxchg %ecx,(%edx)
	jne 1b
	mov %eax,%ecx
	and $0x55555555,%ecx
	shl $5,%ecx
	lea 32(%edx,%ecx),%ecx
	mov %gs:0x66666666,%edx
	mov %edx,4(%ecx)
	mov 20(%esp),%edx
	mov %edx,8(%ecx)
	mov 24(%esp),%edx
	mov %edx,12(%ecx)
	mov 28(%esp),%edx
	mov %edx,16(%ecx)
	mov 32(%esp),%edx
	mov %edx,20(%ecx)
	mov 36(%esp),%edx
	mov %edx,24(%ecx)
	mov 40(%esp),%edx
	mov %edx,28(%ecx)
	inc %eax
	mov %eax,(%ecx)
	jmp 9f
8:	lock incl 8(%edx)
9:	pop %edx
	pop %ecx
	pop %eax
	popfl
record32_end:
enter32:
	pushfl
	push %eax
	push %ecx
	push %edx
	push %esi
	push %edi
	mov %gs:0,%esi
	cmp 0x88888888,%esi
	je 9f				/* an unfollowed vfork child */
	imul $0x61c88647,%esi,%ecx
	shr $25,%ecx
	mov $128,%edx
1:	imul $1040,%ecx,%edi
	add $0x22222222,%edi
	mov (%edi),%eax
	cmp %esi,%eax
	je 3f
	test %eax,%eax
	jnz 2f
	lock cmpxchg %esi,(%edi)
	je 3f
	cmp %esi,%eax
	je 3f
2:	inc %ecx
	and $127,%ecx
	dec %edx
	jnz 1b
	jmp 9f
3:	mov 8(%edi),%ecx
	cmp $32,%ecx
	jae 9f
	lea 1(%ecx),%edx
	mov %edx,8(%edi)
	shl $5,%ecx
	lea 16(%edi,%ecx),%edi
	lea 24(%esp),%esi
	mov %esi,(%edi)
	mov (%esi),%eax
	mov %eax,8(%edi)
	movl $0x11111111,24(%edi)
	rdtsc
	mov %eax,16(%edi)
	mov %edx,20(%edi)
	movl $0x33333333,(%esi)
9:	pop %edi
	pop %esi
	pop %edx
	pop %ecx
	pop %eax
	popfl
enter32_end:
return32:
	lea -4(%esp),%esp
	pushfl
	push %eax
	push %ecx
	push %edx
	push %esi
	push %edi
	push %ebp
	rdtsc
	push %edx
	push %eax
	mov %gs:0,%esi
	imul $0x61c88647,%esi,%ecx
	shr $25,%ecx
	mov $128,%edx
1:	imul $1040,%ecx,%edi
	add $0x22222222,%edi
	cmp %esi,(%edi)
	je 3f
	inc %ecx
	and $127,%ecx
	dec %edx
	jnz 1b
	ud2
3:	lea 36(%esp),%esi
	mov 8(%edi),%ecx
4:	test %ecx,%ecx
	jz 8f
	dec %ecx
	mov %ecx,%edx
	shl $5,%edx
	lea 16(%edi,%edx),%edx
	cmp %esi,(%edx)
	jne 4b
	mov 8(%edx),%eax
	mov %eax,(%esi)
	skip_vfork_child 0x88888888, eax, gs, 7f
	mov (%esp),%eax
	mov 4(%esp),%ebp
	sub 16(%edx),%eax
	sbb 20(%edx),%ebp		/* ticks in ebp:eax */
	mov 24(%edx),%esi
	mov %ecx,8(%edi)
	mov $0x77777777,%ecx		/* ns = ticks * mult >> 32, 64 x 32 bits */
	mul %ecx
	mov %edx,%edi
	mov %ebp,%eax
	mul %ecx
	add %edi,%eax
	adc $0,%edx
	xor %ecx,%ecx
	test %edx,%edx
	jz 5f
	bsr %edx,%ecx
	add $33,%ecx
	jmp 6f
5:	test %eax,%eax
	jz 6f
	bsr %eax,%ecx
	inc %ecx
6:	lock addl $1,(%esi,%ecx,8)
	lock adcl $0,4(%esi,%ecx,8)
7:	lea 8(%esp),%esp
	pop %ebp
	pop %edi
	pop %esi
	pop %edx
	pop %ecx
	pop %eax
	popfl
	ret
8:	ud2
return32_end:
