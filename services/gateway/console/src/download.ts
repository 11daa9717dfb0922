// A file from the API (a quote's PDF): fetched with the tab's token, saved through a link.
import { ApiError, buildUrl, getToken, type Problem, type Query } from './api'

export async function download(path: string, filename: string, query?: Query): Promise<Blob> {
  const headers: Record<string, string> = {}
  const token = getToken()
  if (token) headers.Authorization = `Bearer ${token}`
  let response: Response
  try {
    response = await fetch(buildUrl(path, query), { method: 'GET', headers })
  } catch {
    throw new ApiError({ status: 0, title: 'network' })
  }
  if (!response.ok) {
    let problem: Problem = { status: response.status }
    try { problem = { ...(await response.json()), status: response.status } } catch { /* not JSON */ }
    const retry = response.headers.get('Retry-After')
    throw new ApiError(problem, retry ? Number(retry) : null)
  }
  const blob = await response.blob()
  if (typeof URL.createObjectURL === 'function') {
    const link = document.createElement('a')
    link.href = URL.createObjectURL(blob)
    link.download = filename
    document.body.appendChild(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000)
  }
  return blob
}
