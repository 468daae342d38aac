// The radio model's arithmetic and its refusals (the loss it sets, measured through the switch: fabric.test.ts).
import { describe, expect, it } from 'vitest';
import { radioConditions, radioProblem, radioWithDefaults } from './radio.ts';

describe('radio model', () => {
  it('loss grows with the square of the distance to lossAtRange at the edge, delay with the distance; past range, down', () => {
    const r = radioWithDefaults({ range: 2 });
    expect(r).toEqual({ range: 2, lossAtRange: 0.2, delayMs: 1, delayMsPerUnit: 2 });
    expect(radioConditions(0, r)).toEqual({ up: true, loss: 0, delayMs: 1 });
    expect(radioConditions(1, r)).toEqual({ up: true, loss: 0.05, delayMs: 3 });
    expect(radioConditions(2, r)).toEqual({ up: true, loss: 0.2, delayMs: 5 });
    expect(radioConditions(2.01, r).up).toBe(false);
  });

  it('names what is wrong with a model, and the members it cannot place', () => {
    const at = { a: [0, 0] as [number, number], b: [1, 0] as [number, number] };
    expect(radioProblem({ range: 2 }, ['a', 'b'], at)).toBeUndefined();
    expect(radioProblem({ range: 0 }, ['a', 'b'], at)).toBe('range: 0 is not a distance above 0');
    expect(radioProblem({ range: 2, lossAtRange: 1.5 }, ['a', 'b'], at)).toBe('lossAtRange: 1.5 is not a probability from 0 to 1');
    expect(radioProblem({ range: 2, power: 3 }, ['a', 'b'], at)).toMatch(/^unknown setting "power"/);
    expect(radioProblem({ range: 2 }, ['a', 'b', 'c'], at)).toMatch(/^places its members by distance, but c has no position/);
    expect(radioProblem(2, ['a'], at)).toMatch(/^expected \{ range/);
  });
});
