# DFF.FUNC: call chains (DFF refuses more than 5 deep and circular calls).

@DFF.API('Step 1')
def step1(n=0, stop=10):
    DFF.STORE.set('depth', {'n': n, 'chain': _DFF_FUNC_CHAIN, 'root': _DFF_ROOT_TASK_ID}, scope='chain')
    if n >= stop:
        return n
    return DFF.FUNC('dffc__chain.step2', kwargs={'n': n + 1, 'stop': stop})


@DFF.API('Step 2')
def step2(n=0, stop=10):
    DFF.STORE.set('depth', {'n': n, 'chain': _DFF_FUNC_CHAIN, 'root': _DFF_ROOT_TASK_ID}, scope='chain')
    if n >= stop:
        return n
    return DFF.FUNC('dffc__chain.step3', kwargs={'n': n + 1, 'stop': stop})


@DFF.API('Step 3')
def step3(n=0, stop=10):
    DFF.STORE.set('depth', {'n': n, 'chain': _DFF_FUNC_CHAIN, 'root': _DFF_ROOT_TASK_ID}, scope='chain')
    if n >= stop:
        return n
    return DFF.FUNC('dffc__chain.step4', kwargs={'n': n + 1, 'stop': stop})


@DFF.API('Step 4')
def step4(n=0, stop=10):
    DFF.STORE.set('depth', {'n': n, 'chain': _DFF_FUNC_CHAIN, 'root': _DFF_ROOT_TASK_ID}, scope='chain')
    if n >= stop:
        return n
    return DFF.FUNC('dffc__chain.step5', kwargs={'n': n + 1, 'stop': stop})


@DFF.API('Step 5')
def step5(n=0, stop=10):
    DFF.STORE.set('depth', {'n': n, 'chain': _DFF_FUNC_CHAIN, 'root': _DFF_ROOT_TASK_ID}, scope='chain')
    if n >= stop:
        return n
    return DFF.FUNC('dffc__chain.step6', kwargs={'n': n + 1, 'stop': stop})


@DFF.API('Step 6')
def step6(n=0, stop=10):
    return 'never'


@DFF.API('Loop')
def loop(first=True):
    if first:
        return DFF.FUNC('dffc__chain.loop', kwargs={'first': False})
    DFF.STORE.set('loop', 'second ran', scope='chain')
    return DFF.FUNC('dffc__chain.loop', kwargs={'first': False})


@DFF.API('Read')
def read(key):
    return DFF.STORE.get(key, scope='chain')


@DFF.API('Queue out of range')
def bad_queue():
    return DFF.FUNC('dffc__chain.step6', queue=12)
