# Results as DataFlux Func serialises them (its toolkit JSON).
import datetime
import decimal


class Thing(object):
    def __repr__(self):
        return '<Thing>'


@DFF.API('Values')
def values():
    return {
        'dt': datetime.datetime(2024, 5, 6, 7, 8, 9),
        'dt_tz': datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=8))),
        'dec': decimal.Decimal('1.5'),
        'dec_int': decimal.Decimal('42'),
        'nan': float('nan'),
        'inf': float('inf'),
        'tuple': (1, 2),
        'set': {3},
        'bytes': b'abc',
        'obj': Thing(),
        'nested': [{'d': decimal.Decimal('0.25')}],
        1: 'int key',
    }


@DFF.API('A str')
def text():
    return 'plain text'
