import { afterEach, describe, expect, it, vi } from 'vitest'
import { api, ApiError, setToken } from '../src/api'
import { fakeGateway } from './helpers'

afterEach(() => { vi.unstubAllGlobals(); setToken(null) })

describe('request', () => {
  it('sends the token and JSON, and drops empty query values', async () => {
    setToken('tok-1')
    const calls = fakeGateway(() => ({ status: 201, body: { id: 'x' } }))
    const answer = await api.post('/leads', { name: '李雷' }, { on_duplicate: 'merge', empty: '' })
    expect(answer).toEqual({ id: 'x' })
    expect(calls[0].url).toBe('/leads?on_duplicate=merge')
    expect(calls[0].headers.Authorization).toBe('Bearer tok-1')
    expect(calls[0].body).toEqual({ name: '李雷' })
  })

  it('turns a problem into an ApiError with Retry-After', async () => {
    fakeGateway(() => ({ status: 503, body: { status: 503, title: 'Service unavailable' }, headers: { 'Retry-After': '3' } }))
    const failure = (await api.get('/leads').catch((error: unknown) => error)) as ApiError
    expect(failure).toBeInstanceOf(ApiError)
    expect(failure.status).toBe(503)
    expect(failure.retryAfter).toBe(3)
  })

  it('flattens nested 422 messages', async () => {
    fakeGateway(() => ({ status: 422, body: { status: 422, errors: { key_points: { competitors: ['Unknown field.'] } } } }))
    const failure = (await api.post('/followups', {}).catch((error: unknown) => error)) as ApiError
    expect(failure.fieldErrors).toEqual({ 'key_points.competitors': ['Unknown field.'] })
  })
})
