import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import PipelinesTab from '../src/views/admin/PipelinesTab.vue'
import FieldsTab from '../src/views/admin/FieldsTab.vue'
import { session } from '../src/session'
import { click, errorsShown, fakeGateway, formItemText, plugins, settle, submitForm, typeInto, valueOf } from './helpers'

const pipeline = {
  id: 'p1', name: '默认流程', is_default: true,
  stages: [
    { id: 's1', name: '线索确认', position: 0, probability: 10, kind: 'open', exit_criteria: { fields: ['amount'], activities: [] } },
    { id: 's2', name: '需求分析', position: 1, probability: 30, kind: 'open',
      exit_criteria: { fields: [], activities: [{ kind: 'meeting', tag: 'needs_analysis', min_count: 1 }] } },
    { id: 's3', name: '赢单', position: 2, probability: 100, kind: 'won', exit_criteria: { fields: [], activities: [] } },
  ],
}
const field = { id: 'f1', entity: 'customer', key: 'tier_code', label: '客户分级', type: 'choice', options: ['A', 'B'],
  required: false, active: true, description: null }

beforeEach(() => { session.me = { id: 'u-admin', username: 'admin', display_name: '管理员', role: 'admin', team_id: null } })
afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null })

describe('Pipelines tab', () => {
  it('shows the exit criteria and saves edited stages with their ids; a stage 422 is shown at that stage', async () => {
    let puts = 0
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url === '/pipelines') return { body: { items: [pipeline] } }
      if (call.method === 'PUT') {
        puts += 1
        return puts === 1 ? { status: 422, body: { status: 422, errors: { 'stages.1.exit_criteria.fields.0': ['Unknown opportunity field.'] } } }
          : { body: pipeline }
      }
      return undefined
    })
    const wrapper = mount(PipelinesTab, { global: { plugins: plugins() }, attachTo: document.body })
    await settle()
    expect(wrapper.text()).toContain('金额')
    expect(wrapper.text()).toContain('会议 #needs_analysis ×1')
    await wrapper.find('[data-test="edit-pipeline"]').trigger('click')
    await settle()
    expect(valueOf('input[name=stage_0_fields]')).toBe('amount')
    typeInto('input[name=stage_1_fields]', 'budget_owner')
    typeInto('input[name=stage_1_name]', '需求调研')
    submitForm('[data-test="pipeline-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('input[name=stage_1_fields]')).toContain('Unknown opportunity field.')
    expect(valueOf('input[name=stage_1_name]')).toBe('需求调研')
    typeInto('input[name=stage_1_fields]', 'expected_close_date')
    submitForm('[data-test="pipeline-form"]')
    await settle()
    const put = calls.filter((call) => call.method === 'PUT').at(-1)!
    expect(put.url).toBe('/pipelines/p1')
    expect(put.body).toEqual({
      name: '默认流程', is_default: true,
      stages: [
        { id: 's1', name: '线索确认', probability: 10, kind: 'open', exit_criteria: { fields: ['amount'], activities: [] } },
        { id: 's2', name: '需求调研', probability: 30, kind: 'open',
          exit_criteria: { fields: ['expected_close_date'], activities: [{ kind: 'meeting', tag: 'needs_analysis', min_count: 1 }] } },
        { id: 's3', name: '赢单', probability: 100, kind: 'won', exit_criteria: { fields: [], activities: [] } },
      ],
    })
    wrapper.unmount()
  })
})

describe('Custom fields tab', () => {
  it('lists deactivated fields too, and edits the label, options and active flag', async () => {
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url.startsWith('/custom-fields')) return { body: [field] }
      if (call.method === 'PATCH') return { body: { ...field, active: false } }
      return undefined
    })
    const wrapper = mount(FieldsTab, { global: { plugins: plugins('en') }, attachTo: document.body })
    await settle()
    expect(calls[0].url).toBe('/custom-fields?include_inactive=true')
    expect(wrapper.find('[data-test="fields-table"]').text()).toContain('客户分级')
    await wrapper.find('[data-test="edit-field"]').trigger('click')
    await settle()
    typeInto('#edit-field-label', '客户等级')
    typeInto('#edit-field-options', 'A, B，C')
    click('[data-test="field-active"]')
    await settle()
    submitForm('[data-test="field-edit-form"]')
    await settle()
    const patch = calls.find((call) => call.method === 'PATCH')!
    expect(patch.url).toBe('/custom-fields/f1')
    expect(patch.body).toEqual({ label: '客户等级', description: null, required: false, active: false, options: ['A', 'B', 'C'] })
    wrapper.unmount()
  })

  it('creates a field; a 422 on the key is shown at the key', async () => {
    fakeGateway((call) => {
      if (call.method === 'GET') return { body: [] }
      return { status: 422, body: { status: 422, errors: { key: ['a-z, 0-9 and _ only'] } } }
    })
    const wrapper = mount(FieldsTab, { global: { plugins: plugins('en') }, attachTo: document.body })
    await settle()
    typeInto('#field-key', 'Bad Key')
    typeInto('#field-label', 'Budget')
    submitForm('[data-test="field-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('#field-key')).toContain('a-z, 0-9 and _ only')
    expect(valueOf('#field-key')).toBe('Bad Key')
    expect(wrapper.text()).toContain('Please correct the marked fields.')
    wrapper.unmount()
  })
})
