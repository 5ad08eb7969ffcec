# Independent Python model of src/data/prng.ts (splitmix32 seeding + xoshiro128**), for the tests' reference values.
M = 0xffffffff
def splitmix32(st):
    st[0] = (st[0] + 0x9e3779b9) & M
    z = st[0]
    z = ((z ^ (z >> 16)) * 0x85ebca6b) & M
    z = ((z ^ (z >> 13)) * 0xc2b2ae35) & M
    return (z ^ (z >> 16)) & M
def rotl(x, k): return ((x << k) | (x >> (32 - k))) & M
def rng(seed, stream):
    lo = lambda x: x % 2**32
    hi = lambda x: (x // 2**32) % 2**32
    st = [lo(seed)]
    a = splitmix32(st); st[0] = a ^ hi(seed)
    b = splitmix32(st); st[0] = b ^ lo(stream)
    c = splitmix32(st); st[0] = c ^ hi(stream)
    s = [splitmix32(st) for _ in range(4)]
    if not any(s): s[0] = 1
    def nxt():
        r = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 9) & M
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11)
        return r
    def intn(n):
        limit = 2**32 - (2**32 % n)
        while True:
            x = nxt()
            if x < limit: return x % n
    return nxt, intn
def perm(n, seed, epoch):
    _, intn = rng(seed, epoch)
    a = list(range(n))
    for i in range(n - 1, 0, -1):
        j = intn(i + 1); a[i], a[j] = a[j], a[i]
    return a
nxt, _ = rng(42, 0); print('u32 42/0', [nxt() for _ in range(6)])
nxt, _ = rng(-7, 3); print('u32 -7/3', [nxt() for _ in range(4)])
nxt, _ = rng(2**53 - 1, 2**40); print('u32 big', [nxt() for _ in range(4)])
print('perm 23 42 0', perm(23, 42, 0))
print('perm 10 1 5', perm(10, 1, 5))
