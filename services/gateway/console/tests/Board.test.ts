import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import Board from '../src/views/Board.vue'
import { fakeGateway, plugins, settle } from './helpers'

afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = '' })

const stage = (id: string, name: string, position: number, kind = 'open') =>
  ({ id, name, position, kind, probability: 10 * position, exit_criteria: { fields: [], activities: [] } })
const card = { id: 'opp-1', name: '精工 MES', amount: null, currency: 'CNY', expected_close_date: null,
  owner_id: 'u1', customer_id: 'c1', stage_id: 's1', products: [] }
const board = {
  pipeline: { id: 'p', name: '默认', is_default: true },
  columns: [
    { stage: stage('s1', '线索确认', 0), count: 1, amounts: {}, items: [card] },
    { stage: stage('s2', '需求分析', 1), count: 0, amounts: {}, items: [] },
    { stage: stage('s3', '赢单', 2, 'won'), count: 0, amounts: {}, items: [] },
  ],
}
const refusal = {
  status: 412, title: 'Precondition failed',
  missing: [
    { stage: '线索确认', type: 'field', field: 'amount' },
    { stage: '线索确认', type: 'activity', kind: 'meeting', tag: 'needs_analysis', min_count: 1, found: 0 },
  ],
}

function mountBoard() {
  return mount(Board, {
    global: { plugins: plugins(), stubs: { 'router-link': { template: '<a><slot /></a>' } } },
    attachTo: document.body,
  })
}

describe('Board', () => {
  it('moves a card with the keyboard and shows a 412 refusal with what is missing', async () => {
    const calls = fakeGateway((call) => {
      if (call.url === '/opportunities/board') return { body: board }
      if (call.url.endsWith('/move')) return { status: 412, body: refusal }
      return undefined
    })
    const wrapper = mountBoard()
    await settle()
    const cardElement = wrapper.find('[data-test="card"]')
    expect(cardElement.attributes('aria-label')).toContain('精工 MES')
    await cardElement.trigger('keydown', { key: 'ArrowRight' })
    await settle()
    const move = calls.find((call) => call.url === '/opportunities/opp-1/move')!
    expect(move.method).toBe('POST')
    expect(move.body).toEqual({ stage_id: 's2' })
    const dialog = document.body.querySelector('[data-test="refusal"]')!
    expect(dialog.textContent).toContain('必须填写「金额」')
    expect(dialog.textContent).toContain('需要 1 次标记为「needs_analysis」的会议（已有 0 次）')
    wrapper.unmount()
  })

  it('moves on a drop onto another column', async () => {
    const calls = fakeGateway((call) => {
      if (call.url === '/opportunities/board') return { body: board }
      if (call.url.endsWith('/move')) return { body: { ...card, stage_id: 's2' } }
      return undefined
    })
    const wrapper = mountBoard()
    await settle()
    await wrapper.find('[data-test="card"]').trigger('dragstart')
    await wrapper.findAll('[data-test="column"]')[1].trigger('drop')
    await settle()
    expect(calls.filter((call) => call.url.endsWith('/move')).map((call) => call.body)).toEqual([{ stage_id: 's2' }])
    expect(calls.filter((call) => call.url === '/opportunities/board')).toHaveLength(2) // reloaded
    wrapper.unmount()
  })

  it('asks for a reason before moving to won, and does not move without one', async () => {
    const calls = fakeGateway((call) => (call.url === '/opportunities/board' ? { body: board } : { body: card }))
    const wrapper = mountBoard()
    await settle()
    await wrapper.find('[data-test="card"]').trigger('dragstart')
    await wrapper.findAll('[data-test="column"]')[2].trigger('drop')
    await settle(10)
    const input = document.body.querySelector('.el-message-box input') as HTMLInputElement
    expect(input).not.toBeNull()
    input.value = '价格优势'
    input.dispatchEvent(new Event('input'))
    await settle()
    ;(document.body.querySelector('.el-message-box .el-button--primary') as HTMLButtonElement).click()
    await settle(10)
    expect(calls.filter((call) => call.url.endsWith('/move')).map((call) => call.body))
      .toEqual([{ stage_id: 's3', reason: '价格优势' }])
    wrapper.unmount()
  })
})
