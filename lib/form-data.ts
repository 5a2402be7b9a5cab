// Request bodies as FormData: urlencoded ones parsed here, multipart ones by the platform
// (undici's multipart parser, through a Response made over the bytes).
import { platform } from './platform'

/** What `formData()` can parse, from a content type; null for anything else. */
export function formKind(contentType: string | undefined): 'multipart' | 'urlencoded' | null {
  if (contentType === undefined) return null
  const semi = contentType.indexOf(';')
  const essence = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  if (essence === 'multipart/form-data') return 'multipart'
  if (essence === 'application/x-www-form-urlencoded') return 'urlencoded'
  return null
}

export function unparsable(contentType: string | undefined): TypeError {
  return new TypeError(
    `harrier: formData() needs a multipart/form-data or application/x-www-form-urlencoded body, got ${contentType === undefined ? 'no content-type' : `content-type ${JSON.stringify(contentType)}`}`,
  )
}

/** `bytes` as FormData, by `contentType`; rejects with a TypeError for other types or bad multipart. */
export async function parseFormData(bytes: Uint8Array, contentType: string | undefined): Promise<FormData> {
  const kind = formKind(contentType)
  if (kind === null) throw unparsable(contentType)
  if (kind === 'urlencoded') {
    const form = new FormData()
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
    for (const [name, value] of new URLSearchParams(text)) form.append(name, value)
    return form
  }
  return new (platform().Response)(bytes, { headers: { 'content-type': contentType! } }).formData()
}
